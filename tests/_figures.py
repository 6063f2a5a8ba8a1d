"""What a rendered matplotlib figure shows: its texts, and those it cuts."""


def drawn_texts(axes) -> list:
    """The titles, axis labels and drawn tick labels (those within the view limits; the
    others are not drawn) of the axes, with text."""
    texts = []
    for ax in axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            pad = 1e-9 * (hi - lo)
            texts += [
                t.label1 for t in axis.get_major_ticks() if lo - pad <= t.get_loc() <= hi + pad
            ]
    return [t for t in texts if t.get_visible() and t.get_text()]


def texts_outside(fig, texts) -> list[str]:
    """The texts whose drawn extent leaves the figure."""
    box = fig.bbox
    renderer = fig.canvas.get_renderer()
    out = []
    for text in texts:
        ext = text.get_window_extent(renderer)
        if (
            ext.x0 < box.x0 - 0.5
            or ext.y0 < box.y0 - 0.5
            or ext.x1 > box.x1 + 0.5
            or ext.y1 > box.y1 + 0.5
        ):
            out.append(text.get_text())
    return out
