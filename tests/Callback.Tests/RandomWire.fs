/// Random AMI traffic for the frame reader's properties: keys without CR, LF or ':' (some repeated, as Output
/// and Variable are), values of any text but CR and LF, each line ended by CRLF or a bare LF.
module Callback.Tests.RandomWire

open System
open FsCheck
open FsCheck.FSharp
open Callback.Ami
open Callback.Tests.Frames

/// Strings of `minLength` to `maxLength` characters from `chars`.
let private stringOf (chars: Gen<char>) (minLength: int) (maxLength: int) =
    Gen.choose (minLength, maxLength)
    |> Gen.bind (fun n -> Gen.sequenceToList (List.replicate n chars))
    |> Gen.map (Array.ofList >> String)

let private key =
    Gen.frequency [
        3,
        Gen.elements [
            "Event"
            "Response"
            "ActionID"
            "Output"
            "Variable"
            "ChanVariable"
            "Message"
        ]
        2, stringOf (Gen.elements ([ 'A' .. 'Z' ] @ [ 'a' .. 'z' ] @ [ '0' .. '9' ] @ [ '-'; '_'; 'é' ])) 1 24
    ]

let private value =
    let c =
        Gen.frequency [
            6, Gen.choose (0x20, 0x7E) |> Gen.map char
            1, Gen.elements [ ':'; ' '; '\t'; 'é'; '€'; '\000' ]
            1, Gen.choose (0x80, 0xD7FF) |> Gen.map char
        ]

    Gen.frequency [
        1, Gen.constant ""
        1, Gen.elements [ "\U0001F4DE"; "a: b"; " leading space"; "trailing space " ]
        6, stringOf c 0 30
    ]

/// A message of 1 to 12 generated lines.
let private generatedMessage =
    Gen.nonEmptyListOf (Gen.zip key value)
    |> Gen.map (List.truncate 12)
    |> Gen.map message

let private lineEnd = Gen.frequency [ 4, Gen.constant "\r\n"; 1, Gen.constant "\n" ]

/// The wire text of a message, each line (the blank one included) ended by CRLF or LF.
let private wireText (m: Message) =
    gen {
        let! ends = Gen.sequenceToList (List.replicate (m.Headers.Length + 1) lineEnd)

        let lines =
            Array.toList m.Headers
            |> List.map (fun h -> $"{h.Key}: {h.Value}")
            |> fun ls -> ls @ [ "" ]

        return String.Concat(List.map2 (+) lines ends)
    }

/// The cap the oversized-message properties read with: every generated message is well below it.
let smallCap = 2048

/// A message too long for `smallCap`: one value of one to three times the cap.
let private oversizedMessage =
    gen {
        let! length = Gen.choose (smallCap, 3 * smallCap)
        let! key = Gen.elements [ "Output"; "ChanVariable"; "Data" ]
        return message [ "Event", "Huge"; key, String('x', length) ]
    }

/// Up to 20 messages, some over `smallCap`, their wire text cut into random reads; with the messages a
/// reader must return (the others, in order) and how many it must skip.
let streamWithOversized =
    gen {
        let! items =
            Gen.listOf (
                Gen.frequency [
                    4, generatedMessage |> Gen.map (fun m -> m, false)
                    1, oversizedMessage |> Gen.map (fun m -> m, true)
                ]
            )
            |> Gen.map (List.truncate 20)

        let! texts = Gen.sequenceToList (items |> List.map (fst >> wireText))
        let! chunks = chunksOf (bytes (String.Concat texts))
        let kept = items |> List.filter (snd >> not) |> List.map fst
        return kept, items |> List.filter snd |> List.length, chunks
    }

/// Up to 20 generated messages and their wire text cut into random reads.
let stream =
    gen {
        let! messages = Gen.listOf generatedMessage |> Gen.map (List.truncate 20)
        let! texts = Gen.sequenceToList (List.map wireText messages)
        let all = bytes (String.Concat texts)
        let! chunks = chunksOf all
        return messages, chunks
    }
