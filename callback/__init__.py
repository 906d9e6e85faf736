"""
The C{*0} "call me back" request: a resident dials C{*0} on the home line,
hears a Mandarin confirmation, and the request is recorded for the staff
(C{switchboard callbacks} lists them).

Written only against the core's public interfaces
(L{switchboard.features}, L{switchboard.agi}, L{switchboard.storage},
L{switchboard.speech}, L{switchboard.yamlconf}): the worked example of
docs/architecture.md, "Where a new feature goes".
"""
