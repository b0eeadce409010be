"""Sentences for the synthetic voices: a different text for every utterance.

English voices read English sentences built from templates and word lists. Voices of
other languages read pseudo-words (random syllables) written in their own script: the
identity of a voice does not depend on the words, and pseudo-words need no dictionary
per language while still using only sounds the voice's diphone set can say.
"""

from __future__ import annotations

import numpy as np

# -- English ---------------------------------------------------------------------------

_SUBJECTS = [
    "the old farmer",
    "my neighbour",
    "a young doctor",
    "the small child",
    "our teacher",
    "the captain",
    "a tired student",
    "the baker",
    "her brother",
    "the quiet engineer",
    "his grandmother",
    "the new manager",
    "a local artist",
    "the driver",
    "my cousin",
    "the nurse",
    "a famous singer",
    "the fisherman",
    "the mayor",
    "an honest lawyer",
]
_VERBS = [
    "painted",
    "carried",
    "found",
    "repaired",
    "described",
    "ordered",
    "visited",
    "cleaned",
    "borrowed",
    "explained",
    "forgot",
    "watched",
    "sold",
    "planted",
    "opened",
    "counted",
    "measured",
    "delivered",
    "remembered",
    "photographed",
]
_OBJECTS = [
    "a wooden chair",
    "the broken window",
    "three green apples",
    "the long letter",
    "a heavy suitcase",
    "the kitchen door",
    "an old map",
    "the yellow bicycle",
    "two paper boxes",
    "the garden fence",
    "a silver spoon",
    "the evening newspaper",
    "a bottle of water",
    "the blue curtains",
    "a basket of bread",
    "the small boat",
    "a pair of boots",
    "the library book",
    "a warm blanket",
    "the station clock",
]
_PLACES = [
    "near the river",
    "behind the station",
    "in the morning market",
    "at the top of the hill",
    "inside the museum",
    "along the narrow street",
    "by the harbour",
    "in the village square",
    "under the bridge",
    "at the back of the shop",
    "on the second floor",
    "beside the lake",
]
_TIMES = [
    "yesterday",
    "last winter",
    "before dinner",
    "every Sunday",
    "early this morning",
    "after the storm",
    "on Friday evening",
    "during the holidays",
    "a week ago",
    "at noon",
]
_CONNECTIVES = ["and then", "but later", "because", "while", "so", "although", "before"]
_CLOSINGS = [
    "Nobody expected that.",
    "It was a long day.",
    "Everyone laughed about it later.",
    "The weather was cold and grey.",
    "Nobody knows why.",
    "That is what they told me.",
]


def english_sentence(rng: np.random.Generator, words: int) -> str:
    """Join template clauses until the text has at least `words` words."""
    clauses = [_english_clause(rng)]
    while sum(len(c.split()) for c in clauses) < words:
        clauses.append(f"{rng.choice(_CONNECTIVES)} {_english_clause(rng)}")
    text = ", ".join(clauses)
    text = text[0].upper() + text[1:] + "."
    if rng.random() < 0.3:
        text += " " + str(rng.choice(_CLOSINGS))
    return text


def _english_clause(rng: np.random.Generator) -> str:
    parts = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
    if rng.random() < 0.6:
        parts.append(rng.choice(_PLACES))
    if rng.random() < 0.4:
        parts.append(rng.choice(_TIMES))
    return " ".join(str(p) for p in parts)


# -- Pseudo-words in other scripts -----------------------------------------------------

# Consonant-vowel syllables that nearly every language can pronounce.
_LATIN_SYLLABLES = [
    c + v
    for c in ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v"]
    for v in ["a", "e", "i", "o", "u"]
] + ["an", "en", "in", "on", "ar", "er", "or", "al", "el", "ol"]

# Maori has no b, d, f, g, l, s, v: use its own consonants.
_MAORI_SYLLABLES = [
    c + v
    for c in ["h", "k", "m", "n", "p", "r", "t", "w", "ng", "wh"]
    for v in ["a", "e", "i", "o", "u"]
]

# One transliteration per Latin letter: Latin pseudo-words -> Cyrillic pseudo-words.
_LATIN_TO_CYRILLIC = str.maketrans(
    {
        "a": "а",
        "b": "б",
        "d": "д",
        "e": "е",
        "f": "ф",
        "g": "г",
        "i": "и",
        "k": "к",
        "l": "л",
        "m": "м",
        "n": "н",
        "o": "о",
        "p": "п",
        "r": "р",
        "s": "с",
        "t": "т",
        "u": "у",
        "v": "в",
    }
)

# Syllables written directly in each script (consonant + vowel sign / mater lectionis).
_SCRIPT_SYLLABLES = {
    "japanese": [
        "カ",
        "キ",
        "ク",
        "ケ",
        "コ",
        "サ",
        "シ",
        "ス",
        "セ",
        "ソ",
        "タ",
        "テ",
        "ト",
        "ナ",
        "ニ",
        "ヌ",
        "ネ",
        "ノ",
        "マ",
        "ミ",
        "ム",
        "メ",
        "モ",
        "ラ",
        "リ",
        "ル",
        "レ",
        "ロ",
    ],
    "arabic": [
        "با",
        "بي",
        "بو",
        "تا",
        "تي",
        "تو",
        "ما",
        "مي",
        "مو",
        "نا",
        "ني",
        "نو",
        "را",
        "ري",
        "رو",
        "سا",
        "سي",
        "سو",
        "لا",
        "لي",
        "لو",
        "كا",
        "كي",
        "كو",
    ],
    "hebrew": [
        "בא",
        "בי",
        "בו",
        "תא",
        "תי",
        "תו",
        "מא",
        "מי",
        "מו",
        "נא",
        "ני",
        "נו",
        "רא",
        "רי",
        "רו",
        "סא",
        "סי",
        "סו",
        "לא",
        "לי",
        "לו",
        "כא",
        "כי",
        "כו",
    ],
    "devanagari": [
        "का",
        "की",
        "कु",
        "के",
        "को",
        "ता",
        "ती",
        "तु",
        "ते",
        "तो",
        "मा",
        "मी",
        "मु",
        "मे",
        "मो",
        "ना",
        "नी",
        "नु",
        "ने",
        "नो",
        "रा",
        "री",
        "रु",
        "रे",
        "रो",
        "सा",
        "सी",
        "सु",
        "से",
        "सो",
    ],
    "telugu": [
        "కా",
        "కి",
        "కు",
        "కె",
        "కొ",
        "తా",
        "తి",
        "తు",
        "తె",
        "తొ",
        "మా",
        "మి",
        "ము",
        "మె",
        "మొ",
        "నా",
        "ని",
        "ను",
        "నె",
        "నొ",
        "రా",
        "రి",
        "రు",
        "రె",
        "రొ",
        "సా",
        "సి",
        "సు",
        "సె",
        "సొ",
    ],
}

# How each language code (espeak-ng / RHVoice) writes its pseudo-words.
SCRIPT_OF_LANGUAGE = {
    "ja": "japanese",
    "ar": "arabic",
    "he": "hebrew",
    "hi": "devanagari",
    "te": "telugu",
    "mi": "maori",
    "ru": "cyrillic",
    "uk": "cyrillic",
    "ky": "cyrillic",
    "tt": "cyrillic",
    "mk": "cyrillic",
}


def pseudo_sentence(rng: np.random.Generator, words: int, script: str = "latin") -> str:
    """`words` pseudo-words of 1-3 syllables in `script`, with a comma now and then."""
    syllables = _syllables_of(script)
    separator = "" if script == "japanese" else " "
    tokens = []
    for i in range(words):
        word = "".join(str(s) for s in rng.choice(syllables, size=rng.integers(1, 4)))
        if script == "cyrillic":
            word = word.translate(_LATIN_TO_CYRILLIC)
        tokens.append(word)
        if i < words - 1 and rng.random() < 0.15:
            tokens.append("、" if script == "japanese" else ",")
    text = separator.join(tokens).replace(" ,", ",")
    return text + ("。" if script == "japanese" else ".")


def _syllables_of(script: str) -> list[str]:
    if script in ("latin", "cyrillic"):
        return _LATIN_SYLLABLES
    if script == "maori":
        return _MAORI_SYLLABLES
    return _SCRIPT_SYLLABLES[script]


def sentence_for(rng: np.random.Generator, language: str, seconds: float) -> str:
    """A fresh sentence in `language` that should take about `seconds` to say."""
    if language.startswith("en"):
        return english_sentence(rng, words=max(3, round(seconds * 3.6)))
    script = SCRIPT_OF_LANGUAGE.get(language.split("-")[0], "latin")
    return pseudo_sentence(rng, words=max(2, round(seconds * 2.8)), script=script)
