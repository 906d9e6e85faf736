"""
C{python -m bench.speech_render [-n 2000] [--concurrency 2]}: render the #9
announcements of N households, as on a first start with a fresh registry,
and print the time and disk per announcement; then the time one changed
household takes to reach its rendered announcement (one render, idle server).

Each announcement is distinct (name, building, unit, room, notes), so every
one is a cache miss; the sounds folder is a fresh temporary one.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import tempfile
import time

from twisted.internet import defer, task

from switchboard.speech import Speech, chinese

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "梅兰芳华英秀玉珍桂凤建国明伟军平强志文德福春海林山云红丽敏静"
NOTES = ("", "", "行动不便，独居。", "听力不好，请大声说话。", "有心脏病。", "")


def announcement(rng: random.Random, i: int) -> str:
    """One household's #9 announcement, as the alarm renders it."""
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    building, unit = 1 + i % 40, 1 + (i // 40) % 6
    room = f"{1 + (i // 240) % 26}{rng.choice(('01', '02', '03', '04'))}"
    return (f"紧急求助！华林花园{chinese.count(building)}号楼{chinese.count(unit)}单元"
            f"{chinese.digits(room)}室，{name}需要帮助。{rng.choice(NOTES)}"
            f"能马上过去请按1，去不了请按2。")


def disk_usage(folder: str) -> tuple[int, int]:
    """(bytes in files, bytes of disk blocks) under C{folder}."""
    size = blocks = 0
    for entry in os.scandir(folder):
        st = entry.stat()
        size += st.st_size
        blocks += st.st_blocks * 512
    return size, blocks


@defer.inlineCallbacks
def run(reactor, n: int, concurrency: int):
    sounds = tempfile.mkdtemp(prefix="speech-bench-")
    try:
        speech = Speech(sounds, reactor=reactor, concurrency=concurrency)
        if not speech.available:
            raise SystemExit(f"no speech engine: {speech.unavailable_reason}")
        rng = random.Random(13)
        texts = list(dict.fromkeys(announcement(rng, i) for i in range(n)))
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        results = yield speech.render_all((text, None) for text in texts)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        failed = [r for r in results.values() if not isinstance(r, str)]
        size, blocks = disk_usage(speech.folder)
        seconds = size / 2 / speech.rate
        cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        print(f"engine: {speech.version}, voice {speech.default_voice}, {speech.rate} Hz, "
              f"{concurrency} at a time")
        print(f"{len(texts)} announcements ({len(failed)} failed): {wall:.1f} s wall, "
              f"{wall / len(texts) * 1000:.1f} ms each; engine CPU {cpu / len(texts) * 1000:.1f} ms each")
        print(f"disk: {size / 1e6:.1f} MB ({blocks / 1e6:.1f} MB in blocks), "
              f"{size / len(texts) / 1024:.0f} KiB each, {seconds / len(texts):.1f} s of speech each")
        if len(texts) < 2000:
            print(f"  2,000 households at this rate: ~{wall / len(texts) * 2000:.0f} s, "
                  f"~{size / len(texts) * 2000 / 1e6:.0f} MB")
        # One household changed: its announcement rendered alone (the server idle).
        latencies = []
        for i in range(20):
            text = announcement(rng, n + i) + f"（第{chinese.count(i + 1)}次修改）"
            t0 = time.perf_counter()
            yield speech.render(text)
            latencies.append(time.perf_counter() - t0)
        print(f"one household changed -> its announcement on disk: median "
              f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
              f"(20 changes)")
    finally:
        shutil.rmtree(sounds, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="households (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="engine runs at once (default: %(default)s, as the server)")
    args = parser.parse_args(argv)
    task.react(lambda reactor: run(reactor, args.n, args.concurrency))


if __name__ == "__main__":
    main()
