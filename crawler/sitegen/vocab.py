"""Fixed word lists the fictional world draws on: occupations, industries, forms, genres, event kinds."""

# Dates are rendered "12 March 1874"; ISO strings travel in the ground truth.
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# occupation -> (plural for the category title, work forms such a person produces)
OCCUPATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "novelist": ("Novelists", ("novel",)),
    "poet": ("Poets", ("poetry collection",)),
    "playwright": ("Playwrights", ("play",)),
    "cartographer": ("Cartographers", ("atlas",)),
    "historian": ("Historians", ("chronicle",)),
    "philosopher": ("Philosophers", ("treatise",)),
    "explorer": ("Explorers", ("travelogue",)),
    "essayist": ("Essayists", ("essay collection",)),
    "librettist": ("Librettists", ("libretto",)),
    "engineer": ("Engineers", ("treatise", "memoir")),
    "banker": ("Bankers", ("memoir",)),
    "shipwright": ("Shipwrights", ("treatise",)),
    "physician": ("Physicians", ("treatise", "memoir")),
    "astronomer": ("Astronomers", ("treatise", "atlas")),
    "botanist": ("Botanists", ("treatise",)),
    "merchant": ("Merchants", ("memoir",)),
    "architect": ("Architects", ("treatise",)),
    "diplomat": ("Diplomats", ("memoir",)),
    "jurist": ("Jurists", ("treatise",)),
    "clockmaker": ("Clockmakers", ("treatise",)),
    "printer": ("Printers", ("memoir",)),
    "glassblower": ("Glassblowers", ("memoir",)),
    "surveyor": ("Surveyors", ("atlas",)),
    "journalist": ("Journalists", ("essay collection", "memoir")),
    "chemist": ("Chemists", ("treatise",)),
    "weaver": ("Weavers", ("memoir",)),
    "naval officer": ("Naval officers", ("memoir", "travelogue")),
    "teacher": ("Teachers", ("essay collection",)),
}

# form -> (plural for the category title, verb used for the creator, genres)
FORMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "novel": ("Novels", "written", ("pastoral romance", "maritime adventure", "gothic mystery", "social realism")),
    "poetry collection": ("Poetry collections", "written", ("lyric verse", "epic verse", "river elegy")),
    "play": ("Plays", "written", ("domestic tragedy", "courtly comedy", "political satire")),
    "atlas": ("Atlases", "compiled", ("regional cartography", "maritime cartography")),
    "chronicle": ("Chronicles", "written", ("regional history", "dynastic history")),
    "treatise": ("Treatises", "written", ("natural philosophy", "moral philosophy", "political economy")),
    "travelogue": ("Travelogues", "written", ("travel writing", "expedition narrative")),
    "essay collection": ("Essay collections", "written", ("literary criticism", "political satire")),
    "libretto": ("Librettos", "written", ("comic opera", "tragic opera")),
    "memoir": ("Memoirs", "written", ("autobiography", "travel writing", "business history")),
}

# industry -> name patterns; "{w}" is a generated word (often a place or family name)
INDUSTRIES: dict[str, tuple[str, ...]] = {
    "shipping": ("{w} Shipping Company", "{w} Steam Navigation Company", "{w} Line"),
    "banking": ("{w} Bank", "{w} Savings Bank", "{w} Trust"),
    "publishing": ("{w} Press", "{w} Publishing House", "{w} and Sons"),
    "education": ("{w} Academy", "University of {w}", "{w} College", "{w} Institute"),
    "railways": ("{w} Railway", "{w} Rail Company"),
    "mining": ("{w} Mining Company", "{w} Collieries"),
    "textiles": ("{w} Mills", "{w} Weaving Company"),
    "brewing": ("{w} Brewery", "{w} Breweries"),
    "instruments": ("{w} Instrument Works", "{w} Optical Works"),
    "insurance": ("{w} Assurance Society", "{w} Mutual"),
    "glassmaking": ("{w} Glassworks",),
    "clockmaking": ("{w} Clockworks", "{w} Horological Company"),
    "telegraphy": ("{w} Telegraph Company",),
    "pharmaceuticals": ("{w} Apothecaries", "{w} Pharmaceutical Company"),
    "shipbuilding": ("{w} Shipyards", "{w} Dockyard Company"),
    "arts": ("{w} Museum", "{w} Conservatory", "{w} Society of Arts"),
}

# event kind -> (plural for the category title, name patterns; {w} word, {c} location name, {y} year)
EVENT_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "treaty": ("Treaties", ("Treaty of {c}", "{w} Accord", "Treaty of {w}")),
    "exhibition": ("Exhibitions", ("{c} Exhibition of {y}", "{w} Exhibition")),
    "congress": ("Congresses", ("Congress of {c}", "{w} Congress")),
    "expedition": ("Expeditions", ("{w} Expedition", "{w} Survey Expedition")),
    "festival": ("Festivals", ("{c} Festival of {y}", "{w} Festival")),
    "strike": ("Strikes", ("{c} Strike of {y}", "{w} Strike")),
    "flood": ("Floods", ("Great Flood of {c}", "{c} Flood of {y}", "{w} Flood")),
    "fire": ("Fires", ("Great Fire of {c}", "{c} Fire of {y}", "{w} Fire")),
    "regatta": ("Regattas", ("{c} Regatta of {y}", "{w} Regatta")),
    "council": ("Councils", ("Council of {c}", "{w} Council")),
}

TITLE_NOUNS = (
    "Lantern", "Orchard", "Harbour", "Archive", "Tide", "Compass", "Garden", "Lament", "Crossing", "Winter",
    "Bell", "Mirror", "Ledger", "Voyage", "Meadow", "Tower", "Chronicle", "Weir", "Lighthouse", "Quarry",
    "Ferry", "Almanac", "Cartographer", "Glasshouse", "Sextant", "Vineyard", "Mill", "Causeway", "Estuary",
)  # fmt: skip
TITLE_ADJS = (
    "Silent", "Last", "Lesser", "Northern", "Hollow", "Seventh", "Amber", "Distant", "Salt", "Copper",
    "Winter", "Broken", "Patient", "Second", "Unfinished", "Green", "Drowned", "Lamplit",
)  # fmt: skip
TITLE_PATTERNS = (
    "The {a} {n} of {w}", "The {n}s of {w}", "Letters from {w}", "{w} and the {n}", "A {n} for {w}",
    "The {w} {n}", "{a} {w}", "Songs of {w}", "The {n} at {w}", "Return to {w}",
)  # fmt: skip

SETTLEMENT_SUFFIXES = ("", "", "", "", "holm", "mere", "vale", "ford", "wick", "haven", "stead", "moor", "gate")
