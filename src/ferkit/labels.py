"""The label sets: FER2013's seven expressions and FER+'s eight, in their datasets' column order. (A folder data set
of other class names has its own labels, its folder names: ferkit.data.folders.)"""

# FER2013 `emotion` column: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# fer2013new.csv vote columns, in file order. The last two are not expressions.
FERPLUS_VOTE_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)
# FER+ classes (the first eight vote columns), named with FER2013's words so both label sets read alike.
FERPLUS_EMOTIONS = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")

USAGES = ("Training", "PublicTest", "PrivateTest")
# What messages call those splits in a user's own folder data set (train/, val/, test/, or the automatic cut).
FOLDER_SPLIT_NAMES = {"Training": "training", "PublicTest": "validation", "PrivateTest": "test"}

# How FER+ votes become test labels: every face under its top vote, or the FER+ authors' strict majority
# (ferkit.data.ferplus).
FERPLUS_TESTS = ("plurality", "strict")

LABEL_SETS = {"fer2013": EMOTIONS, "ferplus": FERPLUS_EMOTIONS}


def emotion_index(name: str, labels=EMOTIONS) -> int:
    """Index of a class given by name (any case) or by its number as a string ('0'..'6')."""
    key = name.strip().lower()
    if key.isdigit() and int(key) < len(labels):
        return int(key)
    aliases = {"anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise",
               "fearful": "fear", "disgusted": "disgust"}
    key = aliases.get(key, key)
    if key in labels:
        return labels.index(key)
    raise KeyError(f"unknown class name {name!r}; expected one of {', '.join(labels)} or 0..{len(labels) - 1}")
