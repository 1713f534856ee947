"""The closed vocabularies the generator draws from (written for this project).

Small on purpose: a byte-level BPE trained on generator text then needs about one token per word,
and a few-million-parameter target can learn every word's spelling and rendering.
"""

from __future__ import annotations

#: Object colours and their RGB fills (well separated; none close to a background colour).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 150, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "orange": (245, 130, 20),
    "purple": (140, 50, 180),
    "pink": (240, 120, 190),
    "brown": (130, 80, 30),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}

#: Scene backgrounds (light, so every object colour stands out).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "beige": (238, 228, 205),
    "light blue": (205, 225, 248),
    "light green": (212, 240, 212),
}

SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon", "cross", "pentagon")

#: 3x3 grid cells, row-major; each maps to the phrase that places an object there.
CELLS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
CELL_PHRASES = {
    "top left": "in the top left corner",
    "top": "at the top",
    "top right": "in the top right corner",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left corner",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}

#: Words printed on signs (lower case, 3-8 letters, common English).
SIGN_WORDS = tuple(
    """
    apple bread cake milk tea coffee juice soup rice fish meat salad pizza pasta honey lemon
    open closed exit enter push pull stop wait slow go left right up down north south east west
    city park lake river bridge road street lane hill field garden forest beach island harbor
    station airport hotel school museum library market bank office shop store cafe bakery
    doctor nurse police fire help info ticket gate door room floor hall stairs lift parking
    sale new free fresh hot cold sweet fast best good happy sunny rainy windy warm quiet safe
    red green blue yellow orange purple pink brown black white gray gold silver
    cat dog bird horse cow sheep fox bear lion tiger duck goat mouse rabbit whale frog
    book pen paper lamp chair table clock phone radio music movie game ball kite boat train
    bus car bike truck plane ship rocket star moon sun cloud rain snow wind storm
    monday friday sunday today daily night morning evening summer winter spring autumn
    welcome hello thanks please sorry danger caution notice private public only
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

#: Chart category axes: (name used in titles, ordered labels); a chart takes a run or a subset.
CHART_AXES: dict[str, tuple[str, ...]] = {
    "month": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "day": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "year": ("2017", "2018", "2019", "2020", "2021", "2022", "2023", "2024"),
    "fruit": ("apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "pear"),
    "city": ("Oslo", "Lima", "Rome", "Cairo", "Tokyo", "Delhi", "Paris", "Berlin"),
}
#: Axes whose labels keep their natural order (the others are drawn in a random order).
ORDERED_AXES = ("month", "day", "year")
CHART_METRICS = ("sales", "visitors", "rainfall", "score", "orders", "downloads")

#: Text-only tasks: names, items and story parts.
PEOPLE = ("Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Ida", "Jack", "Lena", "Max")
ITEMS = ("apples", "books", "coins", "cards", "eggs", "pens", "stamps", "shells", "marbles", "stickers")
ANIMALS = ("fox", "cat", "dog", "bird", "bear", "rabbit", "duck", "mouse", "frog", "horse")
PLACES = ("forest", "village", "garden", "river", "hill", "beach", "market", "park", "farm", "lake")
OBJECTS = (
    "red ball",
    "old map",
    "small key",
    "blue kite",
    "shiny coin",
    "lost hat",
    "wooden box",
    "green leaf",
)
