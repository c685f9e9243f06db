#!/usr/bin/perl
# Telephony::Asterisk::AMI (Debian's libtelephony-asterisk-ami-perl) against bench/stream's fake server:
# connect (greeting + Login), count every event with read_response; answer the warm-up marker (Event:
# UserEvent / UserEvent: WarmupEnd) with a Ping (send_action), which starts the measured stream; at the end
# marker (UserEvent: StreamEnd) time sequential Pings with action(). Prints one JSON line.
# The library is synchronous: it reads events only when asked to, as here.
#
# usage: perl perl-client.pl PORT PINGS WARMUP
use strict;
use warnings;
use Telephony::Asterisk::AMI ();
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

my ($port, $pings, $warmup) = @ARGV;
$pings  ||= 0;
$warmup ||= 0;

my ($events, $warm_events, $ended, $elapsed, $error) = (0, -1, 0, 0, undef);
my @samples;

# Bounded: whatever happens, stop after 5 minutes.
$SIG{ALRM} = sub { $error = 'timed out after 300 s'; report(); exit 0 };
alarm 300;

sub json_string {
  my ($s) = @_;
  return 'null' unless defined $s;
  $s =~ s/(["\\])/\\$1/g;
  $s =~ s/[\x00-\x1f]/ /g;
  return "\"$s\"";
}

sub report {
  my $pings_json = join(',', map { sprintf('%.2f', $_) } @samples);
  printf "{\"client\":\"telephony-asterisk-ami\",\"events\":%d,\"warm_events\":%d,\"ended\":%s,"
    . "\"elapsed_seconds\":%.6f,\"ping_us\":[%s],\"error\":%s}\n",
    $events, $warm_events, ($ended ? 'true' : 'false'), $elapsed, $pings_json, json_string($error);
}

eval {
  my $ami = Telephony::Asterisk::AMI->new(
    Host     => '127.0.0.1',
    Port     => $port,
    Username => 'bench',
    Secret   => 'bench',
  );
  my $t0;
  $ami->connect or die 'connect: ' . $ami->error . "\n";
  while (1) {
    my $m = $ami->read_response;
    if (exists $m->{Event}) {
      my $marker = $m->{Event} eq 'UserEvent' ? ($m->{UserEvent} // '') : '';
      if ($marker eq 'WarmupEnd') {
        $warm_events = $events;
        $ami->send_action(Action => 'Ping') or die 'send: ' . $ami->error . "\n";
        $t0 = clock_gettime(CLOCK_MONOTONIC);
        next;
      }
      if ($marker eq 'StreamEnd') {
        $ended = 1;
        last;
      }
      $events++;
    } elsif (($m->{Response} // '') eq 'Error') {
      die 'read: ' . ($m->{Message} // '?') . "\n";
    }
  }
  $elapsed = clock_gettime(CLOCK_MONOTONIC) - $t0;
  for my $i (1 .. $warmup + $pings) {
    my $p0 = clock_gettime(CLOCK_MONOTONIC);
    my $r  = $ami->action(Action => 'Ping');
    my $us = (clock_gettime(CLOCK_MONOTONIC) - $p0) * 1e6;
    die 'no Pong: ' . ($r->{Message} // '?') . "\n" unless ($r->{Ping} // '') eq 'Pong';
    push @samples, $us if $i > $warmup;
  }
  $ami->disconnect;
  1;
} or do {
  $error = $@ || 'failed';
  chomp $error;
};
report();
