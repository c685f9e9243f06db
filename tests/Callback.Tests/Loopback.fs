/// The loopback network as the tests use it: a port where nothing listens, and clients that connect from
/// another loopback address than 127.0.0.1 (all of 127.0.0.0/8 is loopback), so that a server's log tells
/// them apart from a proxy on 127.0.0.1.
module Callback.Tests.Loopback

open System
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Threading.Tasks

/// A TCP port on 127.0.0.1 that nothing listens on right now: bound, then released.
let freePort () =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    listener.Start()
    let port = (listener.LocalEndpoint :?> IPEndPoint).Port
    listener.Stop()
    port

/// An HTTP client whose connections come from `local` (another loopback address).
let clientFrom (local: string) =
    let handler = new SocketsHttpHandler()

    handler.ConnectCallback <-
        fun context cancel ->
            task {
                let socket =
                    new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)

                socket.Bind(IPEndPoint(IPAddress.Parse local, 0))
                do! socket.ConnectAsync(context.DnsEndPoint, cancel)
                return new NetworkStream(socket, true) :> Stream
            }
            |> ValueTask<Stream>

    new HttpClient(handler, Timeout = TimeSpan.FromSeconds 30.0)

/// A request written byte for byte (HttpClient would normalise `/../callback`) from `local` to
/// 127.0.0.1:`port`; the status code of the answer.
let rawStatus (local: string) port (requestLine: string) =
    use socket =
        new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)

    socket.Bind(IPEndPoint(IPAddress.Parse local, 0))
    socket.Connect(IPEndPoint(IPAddress.Loopback, port))
    socket.ReceiveTimeout <- 10000
    use stream = new NetworkStream(socket, true)

    let request =
        $"{requestLine}\r\nHost: example.com\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    stream.Write(Encoding.ASCII.GetBytes request)
    use reader = new StreamReader(stream, Encoding.ASCII)
    let statusLine = reader.ReadLine()
    int (statusLine.Split(' ')[1])
