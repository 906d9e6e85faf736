"""
Voice broadcast (语音推送): a notice reaches every targeted household's
landline, is played, the resident presses 1 ("heard it") or 2 ("again"),
and staff know who heard it.

Built on the core only: the community registry chooses the households
(L{switchboard.community.targets}), the ring-group engine places the calls
(L{switchboard.ringgroup}), through the trunk's lines where a #9 alarm's
calls come first (L{switchboard.ringgroup.trunk}), and the speech renderer
turns the text into the sound played (L{switchboard.speech}).

  models.py      campaigns, deliveries (one a household), attempts (one a call)
  store.py       what the CLI and the server write and read (synchronous, on a thread)
  dispatcher.py  the server's part: when to call whom, outcomes, retries, capacity
  handler.py     the FastAGI script C{broadcast}: play, 1 = heard, 2 = again
  cli.py         switchboard broadcast send|status|pause|resume|cancel|report
  broadcast.conf the dialplan context the server originates into
"""
