"""The GC timeline: the main event's max latency per 50 ms above, the target's GC pauses below.

A collector that stalls the server shows as latency spikes standing on the
shaded pauses; a tail that is not the collector's stands alone.
"""
from __future__ import annotations

import numpy as np

from reports.gc_pauses import LONG_PAUSE_MS, NS_PER_MS, GcView
from reports.plots import WARMUP_STYLE, WIDTH_IN, Plot, _figure, _finish, _from_zero, _no_data, _warmup, short_label

#: pauses at least this long are shaded on the latency panel too: those held against the slow samples
SHADE_MIN_MS = LONG_PAUSE_MS
GENERATION_COLORS = {0: "0.55", 1: "C1", 2: "C3"}
PAUSE_STYLE = {"color": "C3", "alpha": 0.25, "lw": 0}


def gc_timeline(view: GcView) -> Plot:
    """Max latency per bucket of the view's key, with the GC pauses shaded and drawn as stems below."""
    bin_ms = view.bin_ns / NS_PER_MS
    title = f"Latency and GC pauses (max per {bin_ms:g} ms)"
    fig = _figure(height=4.6)
    timeline = view.timeline
    if timeline.empty:
        ax = fig.add_subplot()
        _no_data(ax, "no successful timed samples")
        ax.set_title(title)
        return _finish(fig, title, False)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1.4)})
    _warmup(top, view.warmup_s)
    if view.warmup_s > 0:
        bottom.axvspan(0, view.warmup_s, **WARMUP_STYLE)  # unlabelled: the legend above names it
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    t = timeline["t_s"].to_numpy()
    top.plot(t, timeline["max_us"].to_numpy() / 1000, lw=0.9, color="C0",
             label=f"{short_label(str(view.key))} max latency")
    top.set_ylabel("latency (ms)")
    _from_zero(top, timeline["max_us"].to_numpy() / 1000)
    top.set_title(title)
    pauses = view.pauses
    if pauses is None:
        _no_data(bottom, "no gc.csv: GC pauses not recorded")
        top.legend(loc="upper right", fontsize="small")
        return _finish(fig, title, True)
    span_s = max(float(t.max()) + view.bin_ns / 1e9, 1e-3)
    pixel_s = span_s / (WIDTH_IN * 100)  # at least one pixel wide, or a 0.1 ms pause would not show
    long = pauses.loc[pauses["duration_ms"] >= SHADE_MIN_MS]
    if not long.empty:
        widths = np.maximum(long["duration_ms"].to_numpy() / 1000, pixel_s)
        top.broken_barh(list(zip(long["start_s"].to_numpy(), widths, strict=True)), (0, 1),
                        transform=top.get_xaxis_transform(), label=f"GC pause >= {SHADE_MIN_MS:g} ms",
                        **PAUSE_STYLE)
    top.legend(loc="upper right", fontsize="small")
    for generation, color in GENERATION_COLORS.items():
        mine = pauses.loc[pauses["generation"] == generation]
        if not mine.empty:
            bottom.vlines(mine["start_s"].to_numpy(), 0, mine["duration_ms"].to_numpy(), colors=color, lw=1.0,
                          label=f"generation {generation}")
    if pauses.empty:
        bottom.text(0.5, 0.5, "no GC pause during the load", ha="center", va="center",
                    transform=bottom.transAxes, color="0.4")
    else:
        bottom.legend(loc="upper right", fontsize="x-small", ncols=3)
    _from_zero(bottom, pauses["duration_ms"].to_numpy())
    bottom.set_ylabel("GC pause (ms)")
    bottom.set_xlabel("seconds since load start (samples by send time)")
    return _finish(fig, title, True)
