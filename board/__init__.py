"""
The duty board: a live web page for the duty office (open #9 alarms as they
happen, acting on them, recent alarms with their timelines), with staff
accounts, served on the server's HTTP port (L{switchboard.observe}).
"""
