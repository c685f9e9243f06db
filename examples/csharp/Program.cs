// Logs in to Asterisk's manager interface through the sidecar's AMI library, prints the link's state
// changes, originates one call and prints the events until that call's OriginateResponse arrives.
//
//   AMI_HOST=127.0.0.1 AMI_PORT=5038 AMI_USE_TLS=false AMI_USERNAME=... AMI_SECRET=... \
//   ORIGINATE_CHANNEL=Local/15145550190@demo-visitor ORIGINATE_CONTEXT=demo-owner ORIGINATE_EXTEN=owner \
//   dotnet run --project examples/csharp
//
// Exit code 0 when the OriginateResponse says Success, 1 otherwise, 2 when a setting is missing.
using Callback.Ami;

static string Setting(string name, string? fallback = null) =>
    Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
        ? value
        : fallback ?? throw new ArgumentException($"set {name}");

SupervisorOptions options;
string channel, context, exten;
try
{
    options = new SupervisorOptions
    {
        Host = Setting("AMI_HOST", "127.0.0.1"),
        Port = int.Parse(Setting("AMI_PORT", "5039")),
        // Without TLS the library logs in with the MD5 challenge: the secret never crosses the network.
        UseTls = bool.Parse(Setting("AMI_USE_TLS", "true")),
        Username = Setting("AMI_USERNAME"),
        Secret = Setting("AMI_SECRET"),
        Events = EventMask.Of("call"),
        KeepAliveInterval = TimeSpan.FromSeconds(20),
    };
    channel = Setting("ORIGINATE_CHANNEL");
    context = Setting("ORIGINATE_CONTEXT");
    exten = Setting("ORIGINATE_EXTEN");
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
await using var supervisor = new Supervisor(options);
var states = supervisor.WatchStates();
// Subscribed before the Originate, so its OriginateResponse cannot be missed.
using var events = supervisor.Subscribe(capacity: 1000);
supervisor.Start();

await foreach (var change in states.ReadAllAsync(deadline.Token))
{
    Console.WriteLine($"{change.At:O} link {change.State} {change.Reason}");
    if (change.State == LinkState.Ready) break;
}

try
{
    var answer = await supervisor.SendAsync(
        "Originate",
        new Dictionary<string, string>
        {
            ["Channel"] = channel,
            ["Context"] = context,
            ["Exten"] = exten,
            ["Priority"] = "1",
            ["Async"] = "true",
        },
        deadline.Token);
    // The Response echoes the ActionID the library chose: it names this call's OriginateResponse.
    var actionId = answer.Get("ActionID");
    Console.WriteLine($"Originate: {answer.Get("Message")}");

    await foreach (var e in events.Reader.ReadAllAsync(deadline.Token))
    {
        Console.WriteLine($"event {e.Get("Event")} {e.Get("Channel")}");
        if (e.Get("Event") == "OriginateResponse" && e.Get("ActionID") == actionId)
        {
            Console.WriteLine($"OriginateResponse {e.Get("Response")}");
            return e.Get("Response") == "Success" ? 0 : 1;
        }
    }
}
catch (AmiException e)
{
    Console.Error.WriteLine($"AMI: {e.Message}");
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("no OriginateResponse within 30 s");
}
return 1;
