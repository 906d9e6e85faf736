"""
Test support shared by the unit tests (no tests here): fakes of the
server's collaborators, each declared to provide the interface of the real
object it stands in for and checked against it (L{verify}), so that a fake
cannot drift from what the server really offers.
"""
