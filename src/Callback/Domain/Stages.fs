namespace Callback.Domain

/// The answer's five booleans, set one by one as the train passes each stage. The store keeps the ones a
/// request's first answer got, so a duplicate request is told the same.
type StageResults = {
    Socket: bool
    AmiLogin: bool
    AmiOrig: bool
    AmiLogoff: bool
    CallSpooled: bool
} with

    static member None = {
        Socket = false
        AmiLogin = false
        AmiOrig = false
        AmiLogoff = false
        CallSpooled = false
    }
