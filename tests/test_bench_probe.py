"""The burst bench's summaries: py-spy's collapsed stacks and bench.alarm_probe's notes."""

from bench import probe_summary, profile_summary


def test_profile_summary_counts_busy_samples_of_the_reactor_thread(tmp_path):
    path = tmp_path / "burst.txt"
    path.write_text(
        "thread (0x1): MainThread;run (twisted/internet/base.py:1);"
        "EPollReactor.doPoll (twisted/internet/epollreactor.py:9) 60\n"
        "thread (0x1): MainThread;run (twisted/internet/base.py:1);"
        "append (switchboard/journal.py:107) 30\n"
        "thread (0x1): MainThread;run (twisted/internet/base.py:1);"
        "originate (switchboard/ami/client.py:322) 10\n"
        "thread (0x2): PoolThread-database-0;Condition.wait (lib/threading.py:320) 100\n")
    threads = profile_summary.read(str(path))
    lines = "\n".join(profile_summary.summarise(threads))
    assert "MainThread: 100 samples, 40 busy (40%), 60 in epoll" in lines
    assert "75.0%  switchboard/journal.py:append" in lines
    assert "25.0%  ami/client.py:originate" in lines
    assert "PoolThread-database-0:" not in lines  # it only waited


def test_probe_summary_splits_each_alarm_and_keeps_to_the_window():
    t0 = 1000.0
    notes = {"env": [["87660001", t0 + 0.5, t0 + 0.51], ["87660002", t0 + 50, t0 + 50.1]],
             "raise": [["87660001", t0 + 0.512]],
             "opened": [["87660001", t0 + 0.513, t0 + 0.515]],
             "ami": [[t0 + 0.6, 65536, 0.01]], "fsync": [[t0 + 0.512, 0.001]],
             "lag": [[t0 + 0.7, 0.02]], "busy": [[t0 + 0.5, 0.25], [t0 + 1.5, 0.25]]}
    lines = "\n".join(probe_summary.summarise(notes, (t0, t0 + 2.0)))
    assert "(1 FastAGI sessions, 1 alarms on record)" in lines
    assert "first INVITE -> FastAGI connection accepted" in lines and "0.500" in lines
    assert "1 reads >= 60 KB" in lines
    assert "reactor busy 0.50 s of the 2.00 s" in lines
    assert "in the first second: busy 0.25 s" in lines
