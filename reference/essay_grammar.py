"""A small English grammar that writes essay-like text of our own.

RULER fills its haystacks with Paul Graham's essays, which are copyrighted; this
grammar stands in for them. It writes paragraphs about towns, rivers, tools,
weather, markets, history, farming, harbours, bridges, schools, mountains,
music and food, each paragraph about one place so that the text reads as a
whole. Everything is ASCII, every sentence ends with a single period and holds
no other period, and no number in the text has more than four digits (so a
seven-digit needle value or a UUID can never occur in it by chance).

Deterministic: the only source of randomness is `random.Random(seed)`, whose
int seeding, `random()` and `_randbelow` are the same on every platform.

    gen = EssayGen(seed)
    gen.sentence()        # next sentence (str)
    gen.paragraph()       # list of sentences about one place and topic
    essay_text(seed, n_words)   # paragraphs joined by blank lines
"""

import random
import re

# ---------------------------------------------------------------- names

_PLACE_HEAD = [
    "Ash", "Bel", "Cor", "Dun", "El", "Fen", "Gar", "Hal", "Ir", "Kel", "Lin",
    "Mar", "Nor", "Oak", "Pel", "Quen", "Ros", "Sal", "Tor", "Ul", "Val", "Wes",
    "Yar", "Bram", "Cal", "Dor", "Stan", "Hol", "Wick", "Brig", "Fal", "Glen",
    "Har", "Mill", "Red", "Thorn", "Ald", "Black", "Cold", "Long",
]
_PLACE_TAIL = [
    "ford", "by", "ton", "wick", "mouth", "stead", "bridge", "haven", "dale",
    "port", "field", "holm", "more", "ley", "bury", "gate", "well", "combe",
    "thorpe", "ham",
]
_RIVER_NAMES = [
    "Senn", "Aldwater", "Maren", "Tesk", "Orvel", "Lune", "Brisk", "Calder",
    "Wend", "Isel", "Harrow", "Dove", "Ketter", "Amble", "Rhenna", "Silt",
    "Greywater", "Fennet", "Lorne", "Vessel", "Tarrow", "Elder", "Swale", "Ouse",
]
_MOUNTAIN_NAMES = [
    "the Harl Mountains", "the Grey Fells", "the Kettle Hills", "the Orrin Peaks",
    "the High Moors", "the Long Ridges", "the Sable Hills", "the Westering Peaks",
    "the Iron Hills", "the Caddon Fells", "the Blue Downs", "the Shepherd Hills",
]
_FIRST = [
    "Anna", "Tomas", "Maria", "Peter", "Elena", "Jonas", "Clara", "Samuel",
    "Ruth", "Daniel", "Greta", "Oskar", "Helen", "Victor", "Nora", "Arthur",
    "Ida", "Felix", "Martha", "Henrik", "Lucy", "Edmund", "Sofia", "Walter",
    "Agnes", "Hugo", "Esther", "Simon", "Alice", "Robert", "Mina", "George",
]
_LAST = [
    "Brandt", "Holloway", "Marsh", "Fielding", "Cooper", "Lind", "Aldous",
    "Thatcher", "Webb", "Mercer", "Carver", "Hale", "Stone", "Fletcher",
    "Ward", "Baker", "Reeve", "Sawyer", "Gardner", "Tanner", "Booth", "Penn",
]

# ---------------------------------------------------------------- words

LEX = {
    "dir": ["north", "south", "east", "west"],
    "dir_adj": ["northern", "southern", "eastern", "western"],
    "trade": ["weaver", "potter", "miller", "smith", "baker", "carpenter",
              "fisherman", "tanner", "mason", "cooper", "glassmaker", "shoemaker",
              "rope maker", "clockmaker", "boat builder", "printer", "brewer",
              "dyer", "wheelwright", "merchant", "teacher", "clerk", "farmer",
              "shepherd"],
    "good": ["wool", "salt", "timber", "copper", "grain", "olive oil",
             "dried fish", "glass beads", "leather", "pepper", "honey", "linen",
             "iron nails", "cheese", "wine", "tea", "paper", "candles", "rope",
             "pottery", "apples", "cotton cloth", "tin", "dyed silk"],
    "tool": ["hammer", "chisel", "saw", "plane", "file", "spade", "sickle",
             "axe", "awl", "mallet", "trowel", "lathe", "loom", "anvil",
             "spindle", "drill", "knife", "level", "compass", "pair of tongs"],
    "material": ["oak", "ash wood", "iron", "steel", "bronze", "bone",
                 "beech", "brass", "hard stone", "walnut"],
    "product": ["chair", "table", "barrel", "cart wheel", "door", "chest",
                "bell", "clock", "boat", "bench", "window frame", "cabinet"],
    "small_things": ["nails", "pins", "buttons", "tacks", "screws", "seeds",
                     "beads", "rivets"],
    "building": ["town hall", "cathedral", "customs house", "grain exchange",
                 "old chapel", "clock tower", "guild hall", "library",
                 "courthouse", "school"],
    "feature": ["market square", "harbor wall", "river gate", "castle mound",
                "stone bridge", "fish market", "town well", "old mill",
                "church tower", "city wall", "public garden", "wool hall"],
    "look": ["red", "steep", "slate", "crooked", "painted", "narrow", "tiled",
             "tall", "green", "weathered", "whitewashed"],
    "month": ["January", "February", "March", "April", "May", "June", "July",
              "August", "September", "October", "November", "December"],
    "season": ["spring", "summer", "autumn", "winter"],
    "weather_adj": ["cold", "damp", "steady", "bitter", "warm", "gusty",
                    "salty", "dry", "sharp"],
    "crop": ["wheat", "barley", "oats", "rye", "beans", "turnips", "cabbages",
             "potatoes", "flax", "hops", "onions", "pears"],
    "animal": ["sheep", "goats", "cows", "geese", "pigs", "horses", "hens",
               "ducks"],
    "coin": ["shillings", "florins", "silver pieces", "crowns", "marks"],
    "ship": ["fishing boat", "barge", "schooner", "cargo ship", "ferry",
             "rowing boat", "sloop", "coastal trader"],
    "subject": ["arithmetic", "geography", "reading", "history", "drawing",
                "music", "grammar", "natural science", "bookkeeping", "Latin"],
    "instrument": ["fiddle", "flute", "drum", "harp", "organ", "horn",
                   "accordion", "lute", "guitar"],
    "food": ["rye bread", "fish soup", "apple cake", "smoked ham",
             "barley porridge", "pickled herring", "roast lamb", "bean stew",
             "honey biscuits", "cheese pie"],
    "tree": ["oak", "pine", "birch", "beech", "chestnut", "alder", "elm",
             "spruce", "willow"],
    "hard_adj": ["hard", "long", "hungry", "bitter", "quiet", "busy",
                 "uncertain", "difficult"],
    "good_adj": ["careful", "patient", "clever", "honest", "stubborn",
                 "cheerful", "skilled", "practical"],
    "period": ["week", "month", "season", "fortnight"],
    "century": ["twelfth", "thirteenth", "fourteenth", "fifteenth",
                "sixteenth", "seventeenth", "eighteenth", "nineteenth"],
    "num_word": ["two", "three", "four", "five", "six", "seven", "eight",
                 "nine", "ten", "eleven", "twelve"],
    "conn": ["In the end", "For a long time", "According to local records",
             "Even today", "As a result", "At the same time", "Later",
             "Before long", "In most years", "By all accounts", "Not long after",
             "In those days", "On the whole", "Over time", "Still",
             "In practice", "For this reason", "Perhaps surprisingly"],
    "tail": ["at least according to the town records",
             "which surprised many visitors", "as the old saying goes",
             "though few people noticed at the time",
             "or so the older residents claim", "much as it does today",
             "in good years and bad", "if the letters of the time are right",
             "and nobody seemed to mind"],
}

# Templates per topic. {slot} draws from LEX or from the paragraph's entities
# (city, city2, river, mountain, person); [a|b|c] picks one alternative, and an
# empty alternative makes a part optional. Numbers: {year} 1100..1949,
# {num} 3..90, {big} 200..9000, {pct} 5..60, {num_word} two..twelve.
TOPICS = {
    "city": [
        "{city} grew up around a small harbor on the {dir} bank of {river}.",
        "By {year}, {city} had about {big} inhabitants, and most of them worked as {trades} or {trades}.",
        "The streets of {city} were narrow, and many of them ended at the old {feature}.",
        "Visitors to {city} often remarked on the {look} roofs and the smell of {good} in the air.",
        "The town council of {city} met once a {period} in a room above the {feature}.",
        "Few people outside the region had heard of {city} before the {building} was finished in {year}.",
        "In {city}, the {trades} lived close to the {feature}, while the {trades} preferred the hills to the {dir}.",
        "{city} is still known for its {good} and for its {look} {feature}.",
        "The {dir_adj} quarter of {city} was the poorest part of town, but it was also the liveliest.",
        "A walk from one end of {city} to the other took less than an hour.",
        "Most houses in {city} were built of [timber|brick|oak beams] and stone, with small windows facing the street.",
        "The population of {city} [doubled|fell by half|barely changed] in the {num} years after {year}.",
        "Children in {city} played on the {feature} until the bells called them home.",
        "Every family in {city} seemed to know someone who worked at the {building}.",
    ],
    "river": [
        "{river} rises in the hills {dir} of {city} and flows for nearly {num} miles before it reaches the sea.",
        "In spring the water of {river} turns brown with mud from the high fields.",
        "The ferry across {river} carried {trades}, cattle, and carts full of {good}.",
        "Boatmen learned to read the current of {river} the way farmers read the sky.",
        "A stone bridge over {river} was built in {year}, and it still carries traffic today.",
        "When {river} flooded in {year}, the lower streets of {city} stood under water for {num_word} days.",
        "Mills along {river} ground grain for {city} and for the villages around it.",
        "In dry summers {river} shrinks to a chain of shallow pools, and children wade across it.",
        "The banks of {river} are lined with {tree} trees that were planted to hold the soil.",
        "Fishermen on {river} caught trout in the spring and eels in the autumn.",
        "Barges loaded with {good} moved slowly down {river} toward the coast.",
    ],
    "tools": [
        "A good {tool} is made from {material} and lasts for many years if it is kept dry.",
        "The {trade} kept a {tool} on a shelf above the bench, next to a jar of {small_things}.",
        "Most {trades} learned to sharpen a {tool} before they learned to read.",
        "In the workshops of {city}, a {tool} was passed from parent to child like a family name.",
        "The price of a new {tool} in {year} was about {num} {coin}, which was a week of wages.",
        "With a {tool} and a {tool}, a skilled {trade} could finish a {product} in {num_word} days.",
        "Apprentices spent their first year sweeping floors and fetching {small_things} for the {trade}.",
        "Nobody in the workshop was allowed to borrow the {tool} without asking first.",
        "The handle of an old {tool} is often worn smooth in the shape of one hand.",
        "A broken {tool} was rarely thrown away, because the {material} could be used again.",
        "{person} claimed that a {product} made with a {tool} would outlast its owner.",
    ],
    "weather": [
        "The winters in {city} are long, and snow often covers the roads from [November|December] until [March|April].",
        "A {weather_adj} wind from the {dir} brings rain almost every afternoon in {month}.",
        "Farmers watch the clouds over {mountain} to guess whether the harvest will be dry.",
        "In {year}, a storm tore the roofs from {num} houses and sank {num_word} boats in the harbor.",
        "Summer days are warm but short, and the evenings turn cold as soon as the sun goes down.",
        "Old sailors say that a red sky at dawn means the sea will be rough by noon.",
        "Fog rolls in from {river} on most autumn mornings and lifts only after the markets open.",
        "The dry summer of {year} ruined the {crop} and left the wells of {city} nearly empty.",
        "Rain in {city} falls on about {big} hours of the year, or so the local almanac says.",
        "When the ice on {river} broke in {month}, the whole town came out to watch.",
        "A {weather_adj} {season} usually meant a poor year for the {trades}.",
    ],
    "markets": [
        "On market days, the square in {city} filled with stalls selling {good}, {good}, and {good}.",
        "Traders from {city2} brought {good} and returned home with {good}.",
        "The price of {good} rose by {pct} percent after the harvest failed in {year}.",
        "A {trade} could earn more in one good market week than in a month of ordinary work.",
        "Buyers argued loudly, but most deals were settled with a handshake and a cup of tea.",
        "The market opened at dawn and closed when the bell of the {building} rang at noon.",
        "Merchants kept careful ledgers, and many of those books survive in the archive of {city}.",
        "A cart of {good} from {city2} took {num_word} days to reach {city} on the old road.",
        "Every stall paid a small fee to the town, which used the money to repair the {feature}.",
        "By {year}, {city} held a great fair each {season} that drew buyers from {city2} and beyond.",
        "Some sellers of {good} were known for honest weights, and others were known for the opposite.",
    ],
    "history": [
        "In {year}, the people of {city} signed a treaty with {city2} that ended years of quarrels over {good}.",
        "The oldest part of {city} dates from around {year}, when a small fort stood on the hill.",
        "Historians disagree about why {city} declined after {year}, but trade clearly played a part.",
        "During the {century} century, the town was ruled by a council of {num_word} {trades}.",
        "A fire in {year} destroyed much of the old town, and it was rebuilt in stone.",
        "{person}, a {trade} from {city}, wrote a short history of the region that is still read today.",
        "Letters from that period describe {hard_adj} winters, poor roads, and long journeys to {city2}.",
        "The {building} was begun in {year} and finished {num} years later.",
        "In the {century} century, {city} and {city2} competed for the trade in {good}.",
        "Records from {year} list {big} households in {city} and {num} in the villages nearby.",
        "The first printed map of the region, made in {year}, shows {city} as little more than a village.",
    ],
    "farming": [
        "The fields around {city} produce {crop}, {crop}, and some {crop}.",
        "Farmers sow {crop} in {month} and bring in the harvest before the first frost.",
        "A family farm near {river} usually kept {num_word} cows, a few goats, and a large flock of hens.",
        "The soil on the {dir_adj} slopes is thin, so the farmers there keep {animal} instead of planting crops.",
        "In a good year, one acre near {city} could yield enough {crop} to feed a family for a season.",
        "Neighbors helped each other at harvest time and shared the work of threshing.",
        "{person} kept a diary of the weather and the crops on the farm for {num} years.",
        "Hedges of {tree} and hawthorn divide the fields and shelter the {animal} from the wind.",
        "The price of {crop} in {city} was set each {period} at the grain exchange.",
    ],
    "harbor": [
        "The harbor of {city} is protected by a long wall of [granite|rough stone|brick and rubble].",
        "Each morning the {ships} left the harbor before dawn and returned in the afternoon.",
        "A {ship} from {city2} arrived in {month} with a cargo of {good} and {good}.",
        "The harbor master kept a list of every vessel that entered, and his books go back to {year}.",
        "Sailors from {city} were known along the whole coast for their {good_adj} seamanship.",
        "In bad weather the {ships} stayed in port, and the quays filled with idle crews.",
        "The lighthouse at the mouth of the harbor was built in {year} after {num_word} ships were lost.",
        "Loading a {ship} with {good} took a crew of {num_word} men most of a day.",
    ],
    "bridge": [
        "The old bridge at {city} has {num_word} arches, and the middle one is the widest.",
        "Before the bridge was built, travelers waited for hours to cross {river} by ferry.",
        "The builders of the bridge used {material} for the frame and stone for the piers.",
        "A toll of one penny was charged at the bridge until {year}.",
        "Engineers from {city2} studied the bridge at {city} before building their own.",
        "The bridge was widened in {year} so that two carts could pass each other.",
        "Local stories say that the first stone of the bridge was laid on a day in {month}.",
    ],
    "schools": [
        "The first school in {city} opened in {year} with {num} pupils and one teacher.",
        "Children learned {subject} and {subject} in the mornings and worked in the afternoons.",
        "{person} taught {subject} at the school for {num} years and never missed a day.",
        "The library of {city} held about {big} books, many of them donated by {trades}.",
        "Pupils wrote on slates, because paper was too expensive for daily lessons.",
        "The school moved to a larger building near the {feature} in {year}.",
        "Lessons in {subject} were popular, but few pupils enjoyed {subject}.",
        "Reading rooms in {city} stayed open late in {season} so that workers could use them.",
    ],
    "mountains": [
        "{mountain} rise above {city} and are covered with snow for half the year.",
        "Shepherds drove their {animal} up to the high pastures of {mountain} every {season}.",
        "A narrow pass through {mountain} connects {city} with {city2}.",
        "The forests on {mountain} are mostly {tree} and {tree}, with a few old {trees} near the streams.",
        "Woodcutters from {city} felled timber on {mountain} and floated it down {river}.",
        "The climb to the top of {mountain} takes a full day, and the view reaches as far as {city2}.",
        "Mines in {mountain} produced copper and a little silver until about {year}.",
    ],
    "music": [
        "Every {season} the town band of {city} played in the {feature}.",
        "{person} was the best {instrument} player in {city} and taught half the town to play.",
        "The songs of the region are short and cheerful, and most of them are about {good} or the sea.",
        "A new organ was installed in the {building} in {year}, paid for by the {trades}.",
        "Dances were held in the {building} on the last evening of every {period}.",
        "Many families kept a {instrument} at home and played it after supper.",
    ],
    "food": [
        "The most common meal in {city} was {food}, often followed by {food}.",
        "Bakers in {city} started work at three in the morning so the bread was ready by six.",
        "Visitors still ask for {food}, which has been made the same way since {year}.",
        "In {season}, families salted fish and pork and stored them in the cellar for the cold months.",
        "The inns near the {feature} served {food} and a strong local [beer|cider|wine].",
        "{person} was famous for a recipe for {food} that nobody else could copy.",
    ],
}

GENERAL = [
    "This pattern was common across the whole region.",
    "Not everyone agreed with this view, and the debate went on for years.",
    "The reasons for this are worth a closer look.",
    "Much of what we know comes from a few surviving letters and account books.",
    "It is easy to forget how slowly news traveled in those days.",
    "The change did not happen all at once, but over several generations.",
    "People remembered these years long after the details had faded.",
    "There is a simple explanation for this, although it is not the whole story.",
    "Life was not easy, but most people found ways to make it work.",
    "Some of these customs survive, while others are known only from old books.",
    "The same story could be told about many other towns in the region.",
    "The numbers are rough, but they give a fair picture of the time.",
    "Nobody planned it this way, yet the result was remarkably orderly.",
    "In the long run, small improvements mattered more than grand plans.",
    "Neighbors relied on each other, especially in hard years.",
    "{person} once wrote that the town was built by patience rather than by wealth.",
    "A traveler from {city2} described the place as quiet, clean, and a little dull.",
    "Most of the work was done by hand, and it was done well.",
    "Prices, wages, and rents all rose during these years.",
    "Each generation added something, and little was ever torn down.",
    "The old ways lasted longest in the villages, far from the main roads.",
    "Disputes were usually settled by the elders rather than by the courts.",
    "A good deal of this history is written on the buildings themselves.",
    "The winters were the real test, as everyone who lived there knew.",
]

_TOPIC_NAMES = sorted(TOPICS)
# templates that already open with an adverbial get no connective in front
_OPENERS = ("In ", "By ", "When ", "During ", "On ", "Every ", "Before ", "Each ")
_VOWEL_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")
_ALT = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{([a-z_0-9]+)\}")
_PLURAL_OF = {"trades": "trade", "ships": "ship", "trees": "tree"}


def plural(word):
    """English plural of the (regular) nouns in LEX."""
    if word.endswith("man"):
        return word[:-3] + "men"
    if word.endswith(("ch", "sh", "s", "x")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


class EssayGen:
    """Infinite, seeded stream of essay paragraphs and sentences."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self._pending = []

    # ---- names
    def place(self):
        r = self.rng
        return r.choice(_PLACE_HEAD) + r.choice(_PLACE_TAIL)

    def person(self):
        return self.rng.choice(_FIRST) + " " + self.rng.choice(_LAST)

    # ---- expansion
    def _slot(self, name, ent):
        r = self.rng
        if name in ent:
            return ent[name]
        if name == "year":
            return str(r.randrange(1100, 1950))
        if name == "num":
            return str(r.randrange(3, 91))
        if name == "big":
            return str(r.randrange(2, 91) * 100)
        if name == "pct":
            return str(r.randrange(1, 13) * 5)
        if name in _PLURAL_OF:
            return plural(r.choice(LEX[_PLURAL_OF[name]]))
        return r.choice(LEX[name])

    def _expand(self, template, ent):
        r = self.rng
        s = _ALT.sub(lambda m: r.choice(m.group(1).split("|")), template)
        used = set()

        def fill(m):  # a slot used twice in a sentence gets two different words
            for _ in range(8):
                w = self._slot(m.group(1), ent)
                if w not in used:
                    break
            used.add(w)
            return w

        s = _SLOT.sub(fill, s)
        s = re.sub(r"  +", " ", s).replace(" ,", ",").replace(" .", ".")
        # optional connective in front, optional trailing clause at the end
        if r.random() < 0.18 and not template.startswith(_OPENERS):
            proper = template.startswith(("{city", "{person"))
            first = s if proper else s[0].lower() + s[1:]
            s = r.choice(LEX["conn"]) + ", " + first
        elif r.random() < 0.10 and s.endswith(".") and "," not in s:
            s = s[:-1] + ", " + r.choice(LEX["tail"]) + "."
        s = s[0].upper() + s[1:]
        return _VOWEL_ARTICLE.sub(lambda m: m.group(1) + "n ", s)

    def paragraph(self):
        """A list of 4..8 sentences on one topic about one place."""
        r = self.rng
        topic = r.choice(_TOPIC_NAMES)
        city = self.place()
        city2 = self.place()
        while city2 == city:
            city2 = self.place()
        ent = {
            "city": city,
            "city2": city2,
            "river": "the " + r.choice(_RIVER_NAMES),
            "mountain": r.choice(_MOUNTAIN_NAMES),
            "person": self.person(),
        }
        # no template twice in a paragraph: draw without replacement
        topical = list(TOPICS[topic])
        general = list(GENERAL)
        n = r.randint(4, 8)
        out = []
        for _ in range(n):
            pool = general if r.random() < 0.2 or not topical else topical
            out.append(self._expand(pool.pop(r.randrange(len(pool))), ent))
        return out

    def sentence(self):
        if not self._pending:
            self._pending = self.paragraph()[::-1]
        return self._pending.pop()

    def sentences(self):
        while True:
            yield self.sentence()


def essay_paragraphs(seed, n_words):
    """Paragraphs (each a string of sentences joined by spaces) until n_words words."""
    gen = EssayGen(seed)
    out, words = [], 0
    while words < n_words:
        p = " ".join(gen.paragraph())
        out.append(p)
        words += len(p.split())
    return out


def essay_text(seed, n_words):
    """Essay text of at least n_words words: paragraphs separated by blank lines, final newline."""
    return "\n\n".join(essay_paragraphs(seed, n_words)) + "\n"


def split_sentences(text):
    """Split grammar text (or essays.txt) into sentences: each ends with '.'."""
    return [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]
