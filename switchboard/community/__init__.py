"""
The community registry: which households there are, where they are, who
lives there, the landlines they call from and their neighbours.

Shared domain of the core: every feature that calls or recognises residents
uses it (the #9 alarm, a broadcast), none owns it. L{models} declares the
tables, L{registry} changes them for staff (every change in one transaction,
the registry's version bumped), L{csvfile} imports and exports them as CSV
or Excel, L{targets} selects households for a campaign.
"""
