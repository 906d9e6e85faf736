from twisted.internet import task

from switchboard.watch import FileWatcher


def test_a_saved_file_is_reported_once_after_it_settles(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text("a: 1\n")
    clock = task.Clock()
    seen = []
    watcher = FileWatcher([str(path)], seen.append, interval=2, clock=clock)
    watcher.start()
    clock.advance(2)
    assert seen == []
    path.write_text("a: 22\n")
    clock.advance(2)
    assert seen == []  # changed, waiting for it to settle
    clock.advance(2)
    assert seen == [str(path)]
    clock.advance(10)
    assert seen == [str(path)]
    watcher.stop()


def test_a_deleted_file_is_reported_and_a_failing_callback_does_not_stop_watching(tmp_path):
    path = tmp_path / "alarm.yaml"
    path.write_text("x: 1\n")
    clock = task.Clock()
    calls = []

    def changed(p):
        calls.append(p)
        raise RuntimeError("boom")

    watcher = FileWatcher([str(path)], changed, interval=1, clock=clock)
    watcher.start()
    path.unlink()
    clock.advance(1)
    clock.advance(1)
    assert calls == [str(path)]
    path.write_text("x: 2\n")
    clock.advance(1)
    clock.advance(1)
    assert calls == [str(path), str(path)]
