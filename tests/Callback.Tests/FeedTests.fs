module Callback.Tests.FeedTests

open System
open System.Threading.Channels
open Expecto
open Callback.Calls
open Callback.Domain

let private snapshot (callId: CallId) (state: State) : StoredCall =
    let at = DateTimeOffset.UnixEpoch

    {
        CallId = callId
        Attempt = Attempt.first
        Language = Language.English
        MaskedNumber = "+1514555****"
        CreatedAt = at
        UpdatedAt = at
        Status = Live Queued
        History = [
            {
                Sequence = 1L
                Attempt = Attempt.first
                Transition = { State = state; At = at }
            }
        ]
        Attempts = []
        ScheduledFor = None
    }

let private drain (reader: ChannelReader<StoredCall>) = [
    let mutable item = Unchecked.defaultof<StoredCall>

    while reader.TryRead &item do
        yield item.History.Head.Transition.State
]

[<Tests>]
let tests =
    testList "Call feed" [
        test "a watcher gets each snapshot of its call published after it started watching, in order" {
            let feed = CallFeed()
            let id = CallId.create ()
            feed.Publish(snapshot id State.Queued)
            use watch = feed.Watch id
            feed.Publish(snapshot id State.Ringing)
            feed.Publish(snapshot id State.Answered)
            Expect.equal (drain watch.Reader) [ State.Ringing; State.Answered ] "only what came after Watch, in order"
        }

        test "a watcher never sees another call's snapshots" {
            let feed = CallFeed()
            let mine, other = CallId.create (), CallId.create ()
            use watch = feed.Watch mine
            feed.Publish(snapshot other State.Ringing)
            Expect.isEmpty (drain watch.Reader) "another call's snapshot reached this watcher"
        }

        test "a slow watcher keeps the newest snapshots and loses only the oldest" {
            let feed = CallFeed()
            let id = CallId.create ()
            use watch = feed.Watch id

            for _ in 1..20 do
                feed.Publish(snapshot id State.Ringing)

            feed.Publish(snapshot id State.Bridged)
            let seen = drain watch.Reader
            Expect.equal seen.Length 16 "16 snapshots are kept per watcher"
            Expect.equal (List.last seen) State.Bridged "the newest snapshot is never the one dropped"
        }

        test "every watcher of a call gets the snapshot, and a disposed one is forgotten and completed" {
            let feed = CallFeed()
            let id = CallId.create ()
            use first = feed.Watch id
            let second = feed.Watch id
            Expect.equal feed.Watching 2 "two watches are open"
            (second :> IDisposable).Dispose()
            (second :> IDisposable).Dispose()
            Expect.equal feed.Watching 1 "the disposed watch is forgotten (once, however often disposed)"
            Expect.isTrue second.Reader.Completion.IsCompleted "a disposed watch's reader ends"
            feed.Publish(snapshot id State.Ringing)
            Expect.equal (drain first.Reader) [ State.Ringing ] "the other watcher still gets it"
        }
    ]
