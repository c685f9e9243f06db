module Callback.Tests.Main

open Expecto
open Expecto.Impl

/// Expecto's own summary, then the plain closing line CI reads: `N passed, N failed, N skipped`
/// (errored tests count as failed).
let private withClosingLine (printer: TestPrinters) = {
    printer with
        summary =
            fun config summary ->
                async {
                    do! printer.summary config summary
                    let failed = summary.failed.Length + summary.errored.Length
                    // On a line of its own, whatever colour codes the console logger left on the last one.
                    printfn "\n%d passed, %d failed, %d skipped" summary.passed.Length failed summary.ignored.Length
                }
}

[<EntryPoint>]
let main argv =
    runTestsInAssemblyWithCLIArgs [ No_Spinner; Printer(withClosingLine defaultConfig.printer) ] argv
