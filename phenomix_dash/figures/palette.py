"""Colour-blind-safe colours used across pages (Okabe & Ito 2008; rxrx channel colours)."""

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)

PERTURBATION_TYPE_COLOURS: dict[str, str] = {
    "negative_control": "#7F7F7F",
    "positive_control": "#D55E00",
    "crispr": "#0072B2",
    "orf": "#CC79A7",
    "compound": "#009E73",
}

PERTURBATION_TYPE_LABELS: dict[str, str] = {
    "negative_control": "negative control",
    "positive_control": "positive control",
    "crispr": "CRISPR knockout",
    "orf": "ORF overexpression",
    "compound": "compound",
}

# rxrx convention: w1..w6 each get a colour, scaled per channel, summed and clipped.
RXRX_CHANNEL_RGB: tuple[tuple[int, int, int], ...] = (
    (19, 0, 249),
    (42, 255, 31),
    (255, 0, 25),
    (45, 255, 252),
    (250, 0, 253),
    (254, 255, 40),
)

# Diverging scale for signed similarities, symmetric around 0 (blue-white-vermillion).
DIVERGING = [[0.0, "#0072B2"], [0.5, "#F7F7F7"], [1.0, "#D55E00"]]
SEQUENTIAL = "Viridis"

# A point or cell with no measured value: one neutral grey everywhere, never a colour of a scale.
NO_VALUE_COLOUR = "#B0B0B0"
NO_VALUE = "no value"


def categorical_colours(values: list[str]) -> dict[str, str]:
    """Stable colour per category; cycles through Okabe-Ito beyond eight."""
    return {v: OKABE_ITO[i % len(OKABE_ITO)] for i, v in enumerate(values)}
