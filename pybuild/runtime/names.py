"""Container names: containers/.names/<name> is a symlink to the id (atomic to create,
the one record `rename` changes), and Docker's generated adjective_surname names."""

from __future__ import annotations

import os

from pybuild.errors import ContainerError

_NAMES = ".names"

# A selection from moby's pkg/namesgenerator (adjectives, then notable scientists).
ADJECTIVES = (
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome",
    "beautiful", "blissful", "bold", "boring", "brave", "busy", "charming", "clever", "cool",
    "compassionate", "competent", "condescending", "confident", "cranky", "crazy", "dazzling",
    "determined", "distracted", "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant",
    "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant", "focused", "friendly",
    "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hardcore",
    "heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting",
    "jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest",
    "musing", "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective",
    "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky",
    "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
    "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender",
    "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
    "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
)
SURNAMES = (
    "agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata",
    "austin", "babbage", "banach", "bardeen", "bartik", "bassi", "bell", "benz", "bhabha",
    "bhaskara", "black", "blackwell", "bohr", "booth", "borg", "bose", "boyd", "brahmagupta",
    "brattain", "brown", "carson", "cerf", "chandrasekhar", "chaplygin", "chatelet",
    "chatterjee", "clarke", "colden", "cori", "cray", "curie", "darwin", "davinci", "dijkstra",
    "dubinsky", "easley", "edison", "einstein", "elbakyan", "elgamal", "elion", "engelbart",
    "euclid", "euler", "fermat", "fermi", "feynman", "franklin", "gagarin", "galileo", "gates",
    "gauss", "germain", "goldberg", "goldstine", "goldwasser", "golick", "goodall", "hamilton",
    "hawking", "heisenberg", "hermann", "hodgkin", "hoover", "hopper", "hugle", "hypatia",
    "jackson", "jang", "jennings", "jepsen", "johnson", "joliot", "jones", "kalam", "kare",
    "keller", "kepler", "khorana", "kilby", "kirch", "knuth", "kowalevski", "lalande",
    "lamarr", "lamport", "leakey", "leavitt", "lederberg", "lehmann", "lewin", "lichterman",
    "liskov", "lovelace", "lumiere", "mahavira", "margulis", "matsumoto", "maxwell", "mayer",
    "mccarthy", "mcclintock", "mclean", "mcnulty", "meitner", "mendel", "merkle", "mestorf",
    "mirzakhani", "montalcini", "moore", "morse", "moser", "napier", "nash", "neumann",
    "newton", "nightingale", "nobel", "noether", "northcutt", "noyce", "panini", "pare",
    "pascal", "pasteur", "payne", "perlman", "pike", "poincare", "poitras", "proskuriakova",
    "ptolemy", "raman", "ramanujan", "ride", "ritchie", "robinson", "roentgen", "rosalind",
    "rubin", "saha", "sammet", "sanderson", "satoshi", "shamir", "shannon", "shaw", "shirley",
    "shockley", "sinoussi", "snyder", "solomon", "spence", "stonebraker", "sutherland",
    "swanson", "swartz", "swirles", "taussig", "tesla", "tharp", "thompson", "torvalds", "tu",
    "turing", "varahamihira", "vaughan", "villani", "visvesvaraya", "volhard", "wescoff",
    "wilbur", "wiles", "williams", "williamson", "wilson", "wing", "wozniak", "wright", "wu",
    "yalow", "yonath", "zhukovsky",
)


def generated_name(retry: int = 0) -> str:
    """namesgenerator.GetRandomName: adjective_surname, a digit appended on retries
    ("boring_wozniak" is not generated, as in moby)."""
    import random  # only here: create --name, rm and rename never need it

    while True:
        name = f"{random.choice(ADJECTIVES)}_{random.choice(SURNAMES)}"
        if name != "boring_wozniak":
            break
    return f"{name}{random.randint(0, 9)}" if retry > 0 else name


def reserve_generated(containers_dir: str, container_id: str) -> str:
    """Reserve a fresh generated name for `container_id` and return it."""
    for retry in range(64):
        name = generated_name(retry)
        try:
            reserve_name(containers_dir, name, container_id)
            return name
        except ContainerError:
            continue
    raise ContainerError("could not generate a unique container name")


def reserve_name(containers_dir: str, name: str, container_id: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise ContainerError(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    names = os.path.join(containers_dir, _NAMES)
    os.makedirs(names, 0o700, exist_ok=True)
    link = os.path.join(names, name)
    for _ in range(2):
        try:
            os.symlink(container_id, link)
            return
        except FileExistsError:
            owner = os.readlink(link)
            if os.path.isdir(os.path.join(containers_dir, owner)):
                raise ContainerError(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{owner}". You have to remove (or rename) that container to be able to '
                    "reuse that name.") from None
            os.unlink(link)  # its container is gone: the name is free again
    raise ContainerError(f"could not reserve the container name {name!r}")


def names_of(containers_dir: str) -> dict[str, str]:
    """name -> container id, from the name links (the one record `rename` changes while
    a supervisor may be rewriting state.json)."""
    names = os.path.join(containers_dir, _NAMES)
    out = {}
    try:
        entries = os.listdir(names)
    except FileNotFoundError:
        return out
    for entry in entries:
        try:
            out[entry] = os.readlink(os.path.join(names, entry))
        except OSError:
            continue
    return out


def release_name(containers_dir: str, name: str, container_id: str) -> None:
    link = os.path.join(containers_dir, _NAMES, name)
    try:
        if os.readlink(link) == container_id:
            os.unlink(link)
    except OSError:
        pass
