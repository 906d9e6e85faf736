"""
The #9 neighbourhood alarm: the registry of households and their
neighbours, the coordinator that rings them all at once and escalates, the
FastAGI handlers for the caller and each neighbour, and the AstDB copy the
dialplan falls back on when the server cannot be reached.
"""
