"""
Benchmarks of switchboard. C{python -m bench} runs them all and prints the
figures; C{python -m bench --quick} is a shorter run of the same.
"""
