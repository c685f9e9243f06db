/*
 * fake-ami: a fake Asterisk manager (AMI) server for throughput and latency benchmarks.
 *
 * One connection, then it exits. It listens on 127.0.0.1 (port 0 = any free port, written to --port-file),
 * sends the Asterisk 22 greeting, and answers the client's Login with
 *   Response: Success / ActionID: <id> / Message: Authentication accepted
 * IMMEDIATELY FOLLOWED, IN THE SAME write(), by the first events: a client that drops what follows the
 * Login response in the same read loses events, and the count shows it.
 *
 * The events are the Newchannel and Hangup blocks of the recorded Asterisk 22 transcript (the fixture file),
 * in file order, cycled, sent in large writes, in two phases:
 *   1. warm-up: events for --warmup-s seconds and at least --warmup-events events (and at least the first
 *      write), then the marker
 *        Event: UserEvent / Privilege: user,all / UserEvent: WarmupEnd / Sent: <w>
 *      The client answers it with any action (a Ping): runtimes with a JIT (.NET, V8) reach their steady
 *      state here, so the measured phase compares parsers, not compilers. Not timed.
 *   2. measured: the clock starts when that action is read; it is answered, then exactly --events events
 *      and the marker  Event: UserEvent / Privilege: user,all / UserEvent: StreamEnd / Sent: <n>
 *      The clock stops at the next action the client sends: it sends one only after it has consumed the
 *      whole stream (a Ping, or Logoff; closing the connection counts too). Same clock for every client.
 * (Markers are UserEvents rather than `Event: Shutdown`: some clients close and reconnect on Shutdown.)
 * After that it answers actions until the client closes: Ping -> Success/Pong as Asterisk 22 writes it,
 * Logoff -> Goodbye then close, anything else -> Error.
 *
 * Deterministic (same bytes for the same arguments, except Pong's Timestamp and how many warm-up events
 * fit the warm-up time), bounded (--timeout-s for the whole run, default 600), one connection. Prints one
 * JSON line on stdout when done.
 *
 * Build: cc -O2 -o fake-ami fake-ami.c
 * Usage: fake-ami --fixture FILE --events N [--warmup-s S] [--warmup-events N] [--port 0] [--port-file FILE]
 *                 [--chunk BYTES] [--timeout-s S]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fake-ami: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "fake-ami: time limit reached, exiting\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
  _exit(3);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write failed: %s", strerror(errno));
    }
    p += w;
    n -= (size_t)w;
  }
}

/* ---- events from the fixture ---- */

typedef struct {
  char *bytes;  /* the events, back to back, each ending with its blank line */
  size_t *off;  /* off[i] = start of event i; off[count] = end */
  size_t count; /* events in `bytes` */
  size_t cycle; /* distinct events (the pattern repeats every `cycle` events) */
} events_t;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open %s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read %s", path);
  fclose(f);
  buf[n] = 0;
  *len = (size_t)n;
  return buf;
}

/* Picks the `Event: Newchannel` and `Event: Hangup` blocks of the fixture, in order, and lays the cycle
 * out repeatedly until the buffer holds at least `min_bytes`. */
static events_t load_events(const char *path, size_t min_bytes) {
  size_t len;
  char *file = read_file(path, &len);
  const char *picked[64];
  size_t picked_len[64];
  size_t cycle = 0;
  const char *p = file, *end = file + len;
  while (p < end && cycle < 64) {
    const char *sep = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!sep) break;
    size_t blen = (size_t)(sep + 4 - p);
    if ((blen > 19 && memcmp(p, "Event: Newchannel\r\n", 19) == 0) ||
        (blen > 15 && memcmp(p, "Event: Hangup\r\n", 15) == 0)) {
      picked[cycle] = p;
      picked_len[cycle] = blen;
      cycle++;
    }
    p = sep + 4;
  }
  if (cycle == 0) die("no Newchannel/Hangup events in %s", path);
  size_t cycle_bytes = 0;
  for (size_t i = 0; i < cycle; i++) cycle_bytes += picked_len[i];
  size_t reps = (min_bytes + cycle_bytes - 1) / cycle_bytes + 1;
  events_t ev;
  ev.cycle = cycle;
  ev.count = reps * cycle;
  ev.bytes = malloc(reps * cycle_bytes);
  ev.off = malloc((ev.count + 1) * sizeof(size_t));
  if (!ev.bytes || !ev.off) die("out of memory");
  size_t at = 0, k = 0;
  for (size_t r = 0; r < reps; r++)
    for (size_t i = 0; i < cycle; i++) {
      ev.off[k++] = at;
      memcpy(ev.bytes + at, picked[i], picked_len[i]);
      at += picked_len[i];
    }
  ev.off[k] = at;
  free(file);
  return ev;
}

/* ---- actions from the client ---- */

typedef struct {
  char name[64];
  char action_id[256];
} action_t;

/* Copies the value of header `key` (case-insensitive) from the message [p, end) into out. */
static void header_value(const char *p, const char *end, const char *key, char *out, size_t outlen) {
  size_t klen = strlen(key);
  out[0] = 0;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *line_end = (eol > p && eol[-1] == '\r') ? eol - 1 : eol;
    if ((size_t)(line_end - p) > klen && strncasecmp(p, key, klen) == 0 && p[klen] == ':') {
      const char *v = p + klen + 1;
      while (v < line_end && *v == ' ') v++;
      size_t n = (size_t)(line_end - v);
      if (n >= outlen) n = outlen - 1;
      memcpy(out, v, n);
      out[n] = 0;
      return;
    }
    p = eol + 1;
  }
}

typedef struct {
  char buf[65536];
  size_t len;
} inbuf_t;

/* Reads until one whole action (ending with a blank line, CRLF or LF) is buffered; 0 on EOF. */
static int read_action(int fd, inbuf_t *in, action_t *a) {
  for (;;) {
    char *sep = NULL;
    size_t seplen = 0;
    char *crlf = memmem(in->buf, in->len, "\r\n\r\n", 4);
    char *lf = memmem(in->buf, in->len, "\n\n", 2);
    if (crlf && (!lf || crlf < lf)) {
      sep = crlf;
      seplen = 4;
    } else if (lf) {
      sep = lf;
      seplen = 2;
    }
    if (sep) {
      header_value(in->buf, sep, "Action", a->name, sizeof a->name);
      header_value(in->buf, sep, "ActionID", a->action_id, sizeof a->action_id);
      size_t used = (size_t)(sep + seplen - in->buf);
      memmove(in->buf, in->buf + used, in->len - used);
      in->len -= used;
      if (a->name[0] == 0) continue; /* blank lines between actions */
      return 1;
    }
    if (in->len == sizeof in->buf) die("action larger than %zu bytes", sizeof in->buf);
    ssize_t r = recv(fd, in->buf + in->len, sizeof in->buf - in->len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == ECONNRESET || errno == EPIPE)) return 0;
    if (r < 0) die("read failed: %s", strerror(errno));
    if (r == 0) return 0;
    in->len += (size_t)r;
  }
}

static size_t response(char *out, size_t cap, const char *kind, const char *action_id, const char *rest) {
  int n = snprintf(out, cap, "Response: %s\r\n%s%s%s%s\r\n", kind, action_id[0] ? "ActionID: " : "", action_id,
                   action_id[0] ? "\r\n" : "", rest);
  if (n < 0 || (size_t)n >= cap) die("response too long");
  return (size_t)n;
}

/* Writes events [from, from + count) of the endless cycle, in writes of at most one pre-built buffer. */
static void write_events(int fd, const events_t *ev, long long from, long long count) {
  long long done = 0;
  while (done < count) {
    size_t start = (size_t)((from + done) % (long long)ev->cycle);
    long long k = (long long)(ev->count - start);
    if (k > count - done) k = count - done;
    write_all(fd, ev->bytes + ev->off[start], ev->off[start + (size_t)k] - ev->off[start]);
    done += k;
  }
}

static void write_marker(int fd, const char *name, long long sent) {
  char marker[256];
  int n = snprintf(marker, sizeof marker, "Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: %s\r\nSent: %lld\r\n\r\n",
                   name, sent);
  write_all(fd, marker, (size_t)n);
}

/* Answers one action; returns 0 when the connection is to be closed (Logoff). */
static int answer(int fd, const action_t *act, long long *pings) {
  char out[2048];
  size_t n;
  if (strcasecmp(act->name, "Ping") == 0) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char rest[128];
    snprintf(rest, sizeof rest, "Ping: Pong\r\nTimestamp: %ld.%06lu\r\n", (long)tv.tv_sec, (unsigned long)tv.tv_usec);
    n = response(out, sizeof out, "Success", act->action_id, rest);
    write_all(fd, out, n);
    (*pings)++;
    return 1;
  }
  if (strcasecmp(act->name, "Logoff") == 0) {
    n = response(out, sizeof out, "Goodbye", act->action_id, "Message: Thanks for all the fish.\r\n");
    write_all(fd, out, n);
    return 0;
  }
  if (strcasecmp(act->name, "Login") == 0) {
    n = response(out, sizeof out, "Success", act->action_id, "Message: Authentication accepted\r\n");
  } else {
    n = response(out, sizeof out, "Error", act->action_id, "Message: Invalid/unknown command\r\n");
  }
  write_all(fd, out, n);
  return 1;
}

int main(int argc, char **argv) {
  const char *fixture = NULL, *port_file = NULL;
  long long events = -1;
  double warmup_s = 1.0;
  long long warmup_events = 0;
  int port = 0, timeout_s = 600;
  size_t chunk = 256 * 1024;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--fixture") && v) fixture = argv[++i];
    else if (!strcmp(a, "--events") && v) events = atoll(argv[++i]);
    else if (!strcmp(a, "--warmup-s") && v) warmup_s = atof(argv[++i]);
    else if (!strcmp(a, "--warmup-events") && v) warmup_events = atoll(argv[++i]);
    else if (!strcmp(a, "--port") && v) port = atoi(argv[++i]);
    else if (!strcmp(a, "--port-file") && v) port_file = argv[++i];
    else if (!strcmp(a, "--chunk") && v) chunk = (size_t)atol(argv[++i]);
    else if (!strcmp(a, "--timeout-s") && v) timeout_s = atoi(argv[++i]);
    else die("unknown or incomplete argument: %s", a);
  }
  if (!fixture || events < 0) die("usage: fake-ami --fixture FILE --events N [--warmup-s S] [--port P] [--port-file F]");
  if (chunk < 4096) chunk = 4096;

  signal(SIGALRM, on_alarm);
  alarm((unsigned)timeout_s);

  events_t ev = load_events(fixture, chunk);

  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons((unsigned short)port);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind: %s", strerror(errno));
  if (listen(ls, 1) < 0) die("listen: %s", strerror(errno));
  socklen_t alen = sizeof addr;
  getsockname(ls, (struct sockaddr *)&addr, &alen);
  if (port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f) die("cannot write %s", tmp);
    fprintf(f, "%d\n", ntohs(addr.sin_port));
    fclose(f);
    if (rename(tmp, port_file) < 0) die("rename: %s", strerror(errno));
  }

  int fd = accept(ls, NULL, NULL);
  if (fd < 0) die("accept: %s", strerror(errno));
  close(ls);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  static const char greeting[] = "Asterisk Call Manager/11.0.0\r\n";
  write_all(fd, greeting, sizeof greeting - 1);

  static inbuf_t in;
  action_t act;
  long long pings = 0, actions = 0;

  /* Until Login: anything else is refused, as Asterisk does. */
  for (;;) {
    if (!read_action(fd, &in, &act)) die("client closed before Login");
    actions++;
    if (strcasecmp(act.name, "Login") == 0) break;
    char small[1024];
    size_t n = response(small, sizeof small, "Error", act.action_id, "Message: Permission denied\r\n");
    write_all(fd, small, n);
  }
  double t_login = now_s();

  /* Warm-up. The Login response and the first events in ONE write. */
  char *first = malloc(chunk + 1024);
  if (!first) die("out of memory");
  size_t flen = response(first, 1024, "Success", act.action_id, "Message: Authentication accepted\r\n");
  long long warm = 0;
  for (;;) {
    size_t i = (size_t)(warm % (long long)ev.cycle);
    size_t elen = ev.off[i + 1] - ev.off[i];
    if (flen + elen > chunk) break;
    memcpy(first + flen, ev.bytes + ev.off[i], elen);
    flen += elen;
    warm++;
  }
  long long first_write_events = warm;
  write_all(fd, first, flen);
  free(first);
  long long per_write = (long long)(ev.count - ev.cycle);
  while (now_s() - t_login < warmup_s || warm < warmup_events) {
    write_events(fd, &ev, warm, per_write);
    warm += per_write;
  }
  write_marker(fd, "WarmupEnd", warm);

  /* The measured stream starts at the client's answer to WarmupEnd. */
  int open_ = 1;
  if (!read_action(fd, &in, &act)) die("client closed during the warm-up");
  double t_start = now_s();
  actions++;
  open_ = answer(fd, &act, &pings);
  if (open_) {
    write_events(fd, &ev, warm, events);
    write_marker(fd, "StreamEnd", events);
  }

  /* Actions until the client closes (or says Logoff); the first one stops the clock. */
  double t_end = 0;
  while (open_) {
    if (!read_action(fd, &in, &act)) break;
    if (t_end == 0) t_end = now_s();
    actions++;
    open_ = answer(fd, &act, &pings);
  }
  if (t_end == 0) t_end = now_s(); /* the client closed without an action: its close ends the stream */
  close(fd);

  double mean = (double)ev.off[ev.cycle] / (double)ev.cycle;
  printf("{\"warmup_sent\":%lld,\"sent\":%lld,\"first_write_events\":%lld,\"event_bytes_mean\":%.1f,"
         "\"warmup_seconds\":%.6f,\"stream_seconds\":%.6f,\"actions\":%lld,\"pings_answered\":%lld}\n",
         warm, events, first_write_events, mean, t_start - t_login, t_end - t_start, actions, pings);
  return 0;
}
