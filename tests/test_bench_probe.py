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


def test_latency_summary_splits_each_alarm_at_the_probes_times():
    t0 = 1000.0
    notes = {"env": [["87660001", t0 + 0.002, t0 + 0.0025]],
             "raise": [["87660001", t0 + 0.003]],
             "opened": [["87660001", t0 + 0.004, t0 + 0.006]],
             # the reactor's turns: the one _opened ran in ended at +7 ms
             "busy": [[t0 + 0.0035, 0.0035], [t0 + 0.0072, 0.0001]],
             # an earlier alarm's writes are not this one's
             "originate_sent": [[t0 - 5.0, 10], [t0 + 0.008, 6], [t0 + 0.0085, 4]]}
    took = {"87660001": (t0, t0 + 0.011, t0 + 0.015), "87660009": (t0, t0 + 1, t0 + 2)}
    lines = probe_summary.summarise_latency(notes, took)
    rows = {line.strip().rsplit(None, 4)[0]:
            [float(x) for x in line.split()[-4:-1]] for line in lines[2:]}
    assert "(1 alarms; ms)" in lines[0]
    expected = {"INVITE sent -> FastAGI connection accepted (Asterisk's dialplan)": 2.0,
                "accepted -> environment read": 0.5,
                "raise asked -> on record (journal fsynced)": 1.0,
                "on record -> ten Originates built (_opened)": 2.0,
                "-> the end of that reactor turn": 1.0,
                "-> first Originate bytes on the socket": 1.0,
                "-> last Originate bytes on the socket": 0.5,
                "-> first neighbour's INVITE received (Asterisk)": 2.5,
                "-> last neighbour's INVITE received (Asterisk, SIP)": 4.0}
    for name, ms in expected.items():
        assert abs(rows[name][0] - ms) < 1e-6, (name, rows[name])
