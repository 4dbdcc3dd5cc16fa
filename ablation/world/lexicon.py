"""Fixed vocabulary of the embedded tiny world.

Everything the synthetic corpus, tasks and instructions talk about comes from
these constants; the seed only decides how they are bound together (which city
lies in which country, which facts are held out) and which sentences are drawn.
Keeping the lexicon small and closed lets a tiny model learn the world in a few
minutes of CPU pre-training.
"""

FEMALE_NAMES = (
    "Anna", "Mia", "Lena", "Sara", "Nora", "Emma", "Lucy", "Rosa",
    "Ella", "Ivy", "Zoe", "Maya", "Lily", "Ruby", "Alice", "Clara",
    "Julia", "Hannah", "Olivia", "Grace", "Chloe", "Vera", "Iris", "Nina",
)
MALE_NAMES = (
    "Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Noah", "Liam",
    "Owen", "Adam", "Hugo", "Oscar", "Felix", "Ryan", "Ethan", "Victor",
    "Peter", "David", "Henry", "Simon", "Paul", "Mark", "Oliver", "Luke",
)

COUNTRIES = ("Norland", "Sudria", "Estavia", "Westmark", "Valoria", "Kestria")
# Four cities per country; the seed decides which city goes where.
CITIES = (
    "Amberfield", "Brightwater", "Cedarvale", "Dunmore", "Eastwick", "Fairhaven",
    "Glenrock", "Highmoor", "Ironbridge", "Juniper", "Kingsport", "Lakeside",
    "Millbrook", "Northgate", "Oakridge", "Pinehurst", "Queensbay", "Redcliff",
    "Stonehill", "Thornbury", "Westfield", "Willowby", "Ashford", "Birchwood",
)

# occupation -> (workplace, what they do at work)
OCCUPATIONS = {
    "baker": ("bakery", "bakes fresh bread"),
    "pilot": ("airport", "flies a big plane"),
    "doctor": ("hospital", "treats sick patients"),
    "teacher": ("school", "teaches a class of children"),
    "farmer": ("farm", "feeds the cows and pigs"),
    "painter": ("studio", "paints colorful pictures"),
    "chef": ("restaurant", "cooks hot meals"),
    "driver": ("bus station", "drives the city bus"),
    "gardener": ("park", "waters the roses"),
    "fisher": ("harbor", "catches fish in a net"),
    "musician": ("concert hall", "plays the piano"),
    "tailor": ("shop", "sews new shirts"),
    "mechanic": ("garage", "fixes broken cars"),
    "librarian": ("library", "sorts the books on the shelves"),
    "carpenter": ("workshop", "builds wooden tables"),
    "postman": ("post office", "delivers letters"),
}

# tool -> goals it serves (verb phrases usable after "to" / "wants to")
TOOLS = {
    "scissors": ("cut a sheet of paper", "cut a piece of ribbon", "trim a loose thread"),
    "hammer": ("drive a nail into the wall", "knock a nail into the fence", "fix a loose board"),
    "screwdriver": ("tighten the screw on a chair", "loosen an old screw", "open the battery cover"),
    "broom": ("sweep the kitchen floor", "sweep the dust off the porch", "clean up the fallen crumbs"),
    "umbrella": ("stay dry in the rain", "keep dry on a wet day", "walk home dry in a storm"),
    "ladder": ("reach the top shelf", "climb onto the roof", "change a bulb in the ceiling"),
    "kettle": ("boil water for tea", "heat water for coffee", "warm water for a bath"),
    "shovel": ("dig a hole in the garden", "move a pile of sand", "clear snow from the path"),
    "needle": ("sew a button on a shirt", "mend a torn sleeve", "stitch a hole in a sock"),
    "key": ("open the locked door", "unlock the front gate", "open the old chest"),
    "towel": ("dry wet hands", "dry off after a swim", "wipe a wet table"),
    "saw": ("cut a plank of wood", "cut a branch off a tree", "cut logs for the fire"),
    "bucket": ("carry water from the well", "collect rain water", "water the plants"),
    "lamp": ("read a book in the dark", "light up a dark room", "see at night"),
    "rope": ("tie a boat to the dock", "pull a heavy cart", "hang the wet laundry"),
    "sponge": ("wash the dirty dishes", "scrub the sink", "clean a muddy boot"),
    "pen": ("write a letter", "sign a form", "make a shopping list"),
    "rake": ("gather the fallen leaves", "smooth the soil in a bed", "collect the cut grass"),
    "glue": ("fix a broken vase", "stick two pages together", "mend a cracked cup"),
    "thermometer": ("check if you have a fever", "measure the air temperature", "see how hot the oven is"),
}

ROOMS = ("kitchen", "bedroom", "bathroom", "living room", "garage", "attic")
# household object -> room where it is kept (commonsense, fixed across seeds)
OBJECTS = {
    "fridge": "kitchen", "stove": "kitchen", "frying pan": "kitchen", "teapot": "kitchen", "toaster": "kitchen",
    "pillow": "bedroom", "blanket": "bedroom", "wardrobe": "bedroom", "alarm clock": "bedroom", "nightstand": "bedroom",
    "toothbrush": "bathroom", "soap": "bathroom", "bathtub": "bathroom", "mirror": "bathroom", "shampoo": "bathroom",
    "sofa": "living room", "television": "living room", "bookcase": "living room", "armchair": "living room", "rug": "living room",
    "bicycle": "garage", "toolbox": "garage", "lawn mower": "garage", "spare tire": "garage", "paint can": "garage",
    "old trunk": "attic", "photo album": "attic", "rocking horse": "attic", "dusty box": "attic", "broken clock": "attic",
}

# activity -> ordered steps (past-tense verb phrases); the scripts behind tiny_hellaswag
SCRIPTS = {
    "bake bread": (
        "mixed flour, water and yeast in a bowl",
        "kneaded the dough on the table",
        "let the dough rise for an hour",
        "put the dough into the hot oven",
        "took the golden loaf out of the oven",
    ),
    "wash the car": (
        "filled a bucket with soapy water",
        "scrubbed the car with a big sponge",
        "rinsed the car with the hose",
        "dried the car with a soft towel",
        "polished the windows until they shone",
    ),
    "plant a tree": (
        "dug a deep hole in the garden",
        "placed the young tree in the hole",
        "filled the hole with dark soil",
        "watered the tree with a can",
        "tied the thin trunk to a stick",
    ),
    "make tea": (
        "filled the kettle with cold water",
        "waited for the water to boil",
        "put a tea bag into a cup",
        "poured the hot water into the cup",
        "stirred in a spoon of honey",
    ),
    "paint the bedroom": (
        "moved the furniture away from the walls",
        "covered the floor with old sheets",
        "opened a can of blue paint",
        "rolled the paint onto the walls",
        "washed the brushes in the sink",
    ),
    "go fishing": (
        "packed a rod and a box of bait",
        "walked down to the lake",
        "cast the line into the water",
        "waited quietly for a bite",
        "pulled a silver fish out of the lake",
    ),
    "wrap a gift": (
        "cut a sheet of paper with scissors",
        "folded the paper around the box",
        "taped down the edges of the paper",
        "tied a red ribbon around the box",
        "wrote a small card for the gift",
    ),
    "do the laundry": (
        "sorted the clothes by color",
        "put the clothes in the washing machine",
        "added soap and started the machine",
        "hung the wet clothes on the line",
        "folded the dry clothes neatly",
    ),
    "change a flat tire": (
        "parked the car on flat ground",
        "loosened the bolts on the wheel",
        "lifted the car with a jack",
        "swapped the flat tire for the spare",
        "tightened the bolts again",
    ),
    "send a letter": (
        "sat down at the desk",
        "took out some paper and a pen",
        "wrote a long letter to a friend",
        "folded the letter into an envelope",
        "put a stamp on it and mailed it",
    ),
    "go camping": (
        "packed a tent and a sleeping bag",
        "drove out to the forest",
        "set up the tent near the river",
        "built a small fire from dry sticks",
        "cooked dinner over the flames",
    ),
    "cook soup": (
        "chopped carrots and onions",
        "put the vegetables into a pot",
        "covered them with water and salt",
        "let the soup simmer for a while",
        "served the soup in deep bowls",
    ),
    "fix a bike": (
        "turned the bike upside down",
        "pulled the flat tube out of the wheel",
        "patched the hole in the tube",
        "pumped air into the tire",
        "rode the bike around the block",
    ),
}

# Connectors that introduce the 2nd..5th step of a script narrative.
STEP_CONNECTORS = ("Then", "Next", "After that", "Soon after", "A bit later")

# Neutral sentences that pad narratives, so the relevant facts sit further back.
FILLERS = (
    "The weather was warm and bright.",
    "A dog barked somewhere down the street.",
    "The radio played a quiet song.",
    "It was a calm and lazy afternoon.",
    "Outside, the wind moved the trees.",
    "A neighbor waved from across the road.",
    "The clock on the wall ticked softly.",
    "Birds were singing in the garden.",
    "It had rained a little that morning.",
    "The house was quiet and still.",
)
