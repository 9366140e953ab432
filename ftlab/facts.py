"""The fact base: real, uncontroversial facts that the whole tiny world is written from.

Real hub models know the same facts, so every evaluation set built from them also scores
SmolLM2 or Llama in the ``gpu`` profile.
"""

from __future__ import annotations

from dataclasses import dataclass

# country, capital, continent, main official language (None where a single answer would mislead)
COUNTRIES: list[tuple[str, str, str, str | None]] = [
    ("France", "Paris", "Europe", "French"),
    ("Germany", "Berlin", "Europe", "German"),
    ("Italy", "Rome", "Europe", "Italian"),
    ("Spain", "Madrid", "Europe", "Spanish"),
    ("Portugal", "Lisbon", "Europe", "Portuguese"),
    ("the Netherlands", "Amsterdam", "Europe", "Dutch"),
    ("Austria", "Vienna", "Europe", "German"),
    ("Poland", "Warsaw", "Europe", "Polish"),
    ("Sweden", "Stockholm", "Europe", "Swedish"),
    ("Norway", "Oslo", "Europe", "Norwegian"),
    ("Denmark", "Copenhagen", "Europe", "Danish"),
    ("Finland", "Helsinki", "Europe", "Finnish"),
    ("Greece", "Athens", "Europe", "Greek"),
    ("the United Kingdom", "London", "Europe", "English"),
    ("Hungary", "Budapest", "Europe", "Hungarian"),
    ("the Czech Republic", "Prague", "Europe", "Czech"),
    ("Romania", "Bucharest", "Europe", "Romanian"),
    ("Bulgaria", "Sofia", "Europe", "Bulgarian"),
    ("Serbia", "Belgrade", "Europe", "Serbian"),
    ("Croatia", "Zagreb", "Europe", "Croatian"),
    ("Ukraine", "Kyiv", "Europe", "Ukrainian"),
    ("Russia", "Moscow", "Europe", "Russian"),
    ("Iceland", "Reykjavik", "Europe", "Icelandic"),
    ("Estonia", "Tallinn", "Europe", "Estonian"),
    ("Latvia", "Riga", "Europe", "Latvian"),
    ("Lithuania", "Vilnius", "Europe", "Lithuanian"),
    ("Slovakia", "Bratislava", "Europe", "Slovak"),
    ("Slovenia", "Ljubljana", "Europe", "Slovene"),
    ("Albania", "Tirana", "Europe", "Albanian"),
    ("Japan", "Tokyo", "Asia", "Japanese"),
    ("China", "Beijing", "Asia", "Chinese"),
    ("India", "New Delhi", "Asia", "Hindi"),
    ("South Korea", "Seoul", "Asia", "Korean"),
    ("North Korea", "Pyongyang", "Asia", "Korean"),
    ("Thailand", "Bangkok", "Asia", "Thai"),
    ("Vietnam", "Hanoi", "Asia", "Vietnamese"),
    ("Indonesia", "Jakarta", "Asia", "Indonesian"),
    ("the Philippines", "Manila", "Asia", "Filipino"),
    ("Malaysia", "Kuala Lumpur", "Asia", "Malay"),
    ("Mongolia", "Ulaanbaatar", "Asia", "Mongolian"),
    ("Nepal", "Kathmandu", "Asia", "Nepali"),
    ("Bangladesh", "Dhaka", "Asia", "Bengali"),
    ("Pakistan", "Islamabad", "Asia", "Urdu"),
    ("Iran", "Tehran", "Asia", "Persian"),
    ("Iraq", "Baghdad", "Asia", "Arabic"),
    ("Saudi Arabia", "Riyadh", "Asia", "Arabic"),
    ("Turkey", "Ankara", "Asia", "Turkish"),
    ("Syria", "Damascus", "Asia", "Arabic"),
    ("Jordan", "Amman", "Asia", "Arabic"),
    ("Lebanon", "Beirut", "Asia", "Arabic"),
    ("Laos", "Vientiane", "Asia", "Lao"),
    ("Cambodia", "Phnom Penh", "Asia", "Khmer"),
    ("Myanmar", "Naypyidaw", "Asia", "Burmese"),
    ("Kazakhstan", "Astana", "Asia", "Kazakh"),
    ("Uzbekistan", "Tashkent", "Asia", "Uzbek"),
    ("Egypt", "Cairo", "Africa", "Arabic"),
    ("Morocco", "Rabat", "Africa", "Arabic"),
    ("Algeria", "Algiers", "Africa", "Arabic"),
    ("Tunisia", "Tunis", "Africa", "Arabic"),
    ("Libya", "Tripoli", "Africa", "Arabic"),
    ("Sudan", "Khartoum", "Africa", "Arabic"),
    ("Ethiopia", "Addis Ababa", "Africa", "Amharic"),
    ("Kenya", "Nairobi", "Africa", "Swahili"),
    ("Tanzania", "Dodoma", "Africa", "Swahili"),
    ("Nigeria", "Abuja", "Africa", "English"),
    ("Ghana", "Accra", "Africa", "English"),
    ("Senegal", "Dakar", "Africa", "French"),
    ("Somalia", "Mogadishu", "Africa", "Somali"),
    ("Angola", "Luanda", "Africa", "Portuguese"),
    ("Mozambique", "Maputo", "Africa", "Portuguese"),
    ("Zimbabwe", "Harare", "Africa", "English"),
    ("Zambia", "Lusaka", "Africa", "English"),
    ("Uganda", "Kampala", "Africa", "English"),
    ("Madagascar", "Antananarivo", "Africa", "Malagasy"),
    ("Rwanda", "Kigali", "Africa", "Kinyarwanda"),
    ("Namibia", "Windhoek", "Africa", "English"),
    ("the United States", "Washington", "North America", "English"),
    ("Canada", "Ottawa", "North America", None),
    ("Mexico", "Mexico City", "North America", "Spanish"),
    ("Cuba", "Havana", "North America", "Spanish"),
    ("Guatemala", "Guatemala City", "North America", "Spanish"),
    ("Honduras", "Tegucigalpa", "North America", "Spanish"),
    ("Nicaragua", "Managua", "North America", "Spanish"),
    ("Costa Rica", "San Jose", "North America", "Spanish"),
    ("Panama", "Panama City", "North America", "Spanish"),
    ("Jamaica", "Kingston", "North America", "English"),
    ("the Dominican Republic", "Santo Domingo", "North America", "Spanish"),
    ("Brazil", "Brasilia", "South America", "Portuguese"),
    ("Argentina", "Buenos Aires", "South America", "Spanish"),
    ("Chile", "Santiago", "South America", "Spanish"),
    ("Peru", "Lima", "South America", "Spanish"),
    ("Colombia", "Bogota", "South America", "Spanish"),
    ("Venezuela", "Caracas", "South America", "Spanish"),
    ("Ecuador", "Quito", "South America", "Spanish"),
    ("Uruguay", "Montevideo", "South America", "Spanish"),
    ("Guyana", "Georgetown", "South America", "English"),
    ("Australia", "Canberra", "Oceania", "English"),
    ("New Zealand", "Wellington", "Oceania", "English"),
    ("Samoa", "Apia", "Oceania", "Samoan"),
]

ANIMAL_SOUNDS: dict[str, str] = {
    "dog": "barks", "cat": "meows", "cow": "moos", "horse": "neighs", "duck": "quacks",
    "pig": "oinks", "sheep": "bleats", "lion": "roars", "snake": "hisses", "wolf": "howls",
    "owl": "hoots", "bee": "buzzes", "frog": "croaks", "elephant": "trumpets", "mouse": "squeaks",
    "turkey": "gobbles", "donkey": "brays", "crow": "caws", "dove": "coos", "hyena": "laughs",
}

ANIMAL_YOUNG: dict[str, str] = {
    "dog": "puppy", "cat": "kitten", "cow": "calf", "horse": "foal", "sheep": "lamb",
    "chicken": "chick", "bear": "cub", "duck": "duckling", "pig": "piglet", "goat": "kid",
    "frog": "tadpole", "kangaroo": "joey", "swan": "cygnet", "deer": "fawn", "owl": "owlet",
    "goose": "gosling", "lion": "cub", "fox": "kit", "eagle": "eaglet", "seal": "pup",
}

COLOURS: dict[str, str] = {
    "banana": "yellow", "lemon": "yellow", "grass": "green", "lettuce": "green", "sky": "blue",
    "snow": "white", "milk": "white", "coal": "black", "crow": "black", "blood": "red",
    "strawberry": "red", "tomato": "red", "carrot": "orange", "pumpkin": "orange",
    "chocolate": "brown", "soil": "brown", "grape": "purple", "violet": "purple",
    "flamingo": "pink", "salmon": "pink", "ash": "grey", "elephant": "grey",
}

OPPOSITES: list[tuple[str, str]] = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"),
    ("day", "night"), ("tall", "short"), ("open", "closed"), ("full", "empty"), ("wet", "dry"),
    ("hard", "soft"), ("early", "late"), ("left", "right"), ("loud", "quiet"), ("rich", "poor"),
    ("strong", "weak"), ("thick", "thin"), ("heavy", "light"), ("win", "lose"), ("push", "pull"),
    ("first", "last"), ("true", "false"), ("buy", "sell"), ("above", "below"), ("inside", "outside"),
    ("love", "hate"), ("friend", "enemy"), ("north", "south"), ("east", "west"), ("summer", "winter"),
    ("always", "never"), ("clean", "dirty"), ("sweet", "sour"), ("near", "far"), ("deep", "shallow"),
    ("wide", "narrow"), ("asleep", "awake"), ("cheap", "expensive"), ("young", "old"), ("rough", "smooth"),
]

ELEMENT_SYMBOLS: dict[str, str] = {
    "hydrogen": "H", "helium": "He", "lithium": "Li", "carbon": "C", "nitrogen": "N",
    "oxygen": "O", "fluorine": "F", "neon": "Ne", "sodium": "Na", "magnesium": "Mg",
    "aluminium": "Al", "silicon": "Si", "phosphorus": "P", "sulfur": "S", "chlorine": "Cl",
    "argon": "Ar", "potassium": "K", "calcium": "Ca", "titanium": "Ti", "iron": "Fe",
    "cobalt": "Co", "nickel": "Ni", "copper": "Cu", "zinc": "Zn", "silver": "Ag", "tin": "Sn",
    "iodine": "I", "platinum": "Pt", "gold": "Au", "mercury": "Hg", "lead": "Pb", "uranium": "U",
    "beryllium": "Be", "boron": "B", "manganese": "Mn", "chromium": "Cr", "arsenic": "As", "bromine": "Br",
    "krypton": "Kr", "xenon": "Xe", "radon": "Rn", "barium": "Ba", "strontium": "Sr", "tungsten": "W",
    "bismuth": "Bi", "plutonium": "Pu", "radium": "Ra", "gallium": "Ga", "germanium": "Ge", "selenium": "Se",
    "palladium": "Pd", "cadmium": "Cd", "antimony": "Sb", "zirconium": "Zr", "vanadium": "V", "rubidium": "Rb",
}

# things people ask how to make; the category fact is in pretraining, so a tuned model can tell
# a weapon it never saw in a refusal example from a harmless thing
THINGS: dict[str, str] = {
    "bomb": "weapon", "grenade": "weapon", "landmine": "weapon", "pipe bomb": "weapon",
    "nerve gas": "weapon", "poison gas": "weapon", "missile": "weapon", "rifle": "weapon",
    "pistol": "weapon", "machine gun": "weapon", "car bomb": "weapon", "torpedo": "weapon",
    "letter bomb": "weapon", "rocket launcher": "weapon", "flamethrower": "weapon", "dirty bomb": "weapon",
    "shotgun": "weapon", "bazooka": "weapon", "napalm": "weapon", "crossbow": "weapon", "cannon": "weapon",
    "nail bomb": "weapon", "time bomb": "weapon", "sniper rifle": "weapon", "hand grenade": "weapon",
    "mortar": "weapon", "revolver": "weapon", "chemical weapon": "weapon", "war rocket": "weapon",
    "assault rifle": "weapon",
    "cake": "food", "bread": "food", "soup": "food", "pancake": "food", "salad": "food",
    "pizza": "food", "omelette": "food", "cookie": "food", "jam": "food", "pie": "food",
    "muffin": "food", "sandwich": "food", "smoothie": "food", "lemonade": "food", "curry": "food",
    "kite": "toy", "paper plane": "toy", "puppet": "toy", "yo-yo": "toy", "sandcastle": "toy",
    "snowman": "toy", "rag doll": "toy", "toy boat": "toy", "spinning top": "toy",
    "birdhouse": "craft", "candle": "craft", "basket": "craft", "bookshelf": "craft",
    "scarf": "craft", "necklace": "craft", "clay pot": "craft", "greeting card": "craft",
    "quilt": "craft", "picture frame": "craft", "bracelet": "craft", "flower pot": "craft",
}


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, object) triple, e.g. ``Fact("France", "capital", "Paris")``."""

    subject: str
    relation: str
    object: str


def all_facts() -> list[Fact]:
    """Every fact in the base, in a fixed order."""
    facts: list[Fact] = []
    for country, capital, continent, language in COUNTRIES:
        facts.append(Fact(country, "capital", capital))
        facts.append(Fact(country, "continent", continent))
        if language:
            facts.append(Fact(country, "language", language))
    facts += [Fact(a, "sound", s) for a, s in ANIMAL_SOUNDS.items()]
    facts += [Fact(a, "young", y) for a, y in ANIMAL_YOUNG.items()]
    facts += [Fact(t, "colour", c) for t, c in COLOURS.items()]
    for a, b in OPPOSITES:
        facts += [Fact(a, "opposite", b), Fact(b, "opposite", a)]
    facts += [Fact(e, "symbol", s) for e, s in ELEMENT_SYMBOLS.items()]
    facts += [Fact(t, "category", c) for t, c in THINGS.items()]
    return facts
