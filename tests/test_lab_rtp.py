"""The lab's reading of what a phone heard: RTP packets into bursts of audio."""

from lab.rtp import RtpPacket, bursts


def stream(start_at, seconds, *, seq=0, ts=0, every=0.02, late=None):
    """PCMU packets of 20 ms from C{start_at}; C{late}: (index, delay) of a stall."""
    packets, at = [], start_at
    for i in range(int(seconds / 0.02)):
        if late is not None and i == late[0]:
            at += late[1]
        packets.append(RtpPacket(at, 0, (seq + i) & 0xFFFF, (ts + 160 * i) & 0xFFFFFFFF, 160))
        at += every
    return packets


def test_a_pause_between_two_prompts_splits_them():
    first = stream(0.0, 2.0, seq=100, ts=8000)
    # The next prompt 1.5 s later: Asterisk stamps it by the clock, sequence goes on.
    second = stream(3.5, 1.0, seq=200, ts=8000 + 160 * 100 + 12000)
    [(a1, s1), (a2, s2)] = bursts(first + second)
    assert (round(a1, 2), round(a2, 2)) == (2.0, 1.0)


def test_packets_late_on_a_loaded_machine_are_still_one_burst():
    # Asterisk's thread stalled 0.6 s mid-announcement; the media went on unbroken.
    packets = stream(0.0, 17.1, seq=65500, ts=4294967000, late=(300, 0.6))
    [(audio, spread)] = bursts(packets)
    assert round(audio, 2) == 17.1
    assert spread > 17.1


def test_a_gap_in_the_media_splits_even_when_on_time():
    packets = stream(0.0, 1.0) + stream(1.3, 1.0, seq=60, ts=160 * 60 + 2400)
    assert len(bursts(packets)) == 2
