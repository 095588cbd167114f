"""The chain's catalogue for the store-dump generator (:mod:`shared.local.generator`): items, vendors, prices,
popularity and reorder levels.

Seeded by the sizes only, so every store of a chain (any seed) gets the same catalogue: the stores of a chain
sell the same skus, and chain-wide aggregates then make sense.
"""

from dataclasses import dataclass

import numpy as np

ZIPF_A = 1.1  # item popularity ~ rank^-a
INACTIVE_SHARE = 0.03

# category -> (sku letter, vendor name suffix, products with their typical shelf price)
CATEGORIES: dict[str, tuple[str, str, dict[str, float]]] = {
    "Dairy": ("D", "Dairies", {
        "Whole Milk 1 L": 1.19, "Semi-Skimmed Milk 1 L": 1.09, "Greek Yogurt 500 g": 2.29,
        "Natural Yogurt 500 g": 1.49, "Mature Cheddar 400 g": 3.79, "Mozzarella 125 g": 1.19,
        "Salted Butter 250 g": 2.49, "Cream Cheese 200 g": 1.79, "Double Cream 300 ml": 1.59, "Feta 200 g": 2.29}),
    "Bakery": ("B", "Bakehouse", {
        "Sourdough Loaf 800 g": 3.29, "Baguette": 0.99, "Croissants 4-pack": 2.49, "Bagels 5-pack": 1.99,
        "Rye Bread 500 g": 2.19, "Blueberry Muffins 4-pack": 2.79, "Brioche Buns 6-pack": 2.29,
        "Pita Bread 6-pack": 1.29, "Cinnamon Rolls 4-pack": 3.19}),
    "Produce": ("P", "Farms", {
        "Bananas 5-pack": 1.09, "Gala Apples 6-pack": 2.29, "Vine Tomatoes 500 g": 1.99, "Carrots 1 kg": 0.79,
        "Avocado": 0.89, "Lemons 4-pack": 1.49, "Baby Spinach 200 g": 1.69, "Potatoes 2.5 kg": 2.49,
        "Red Onions 1 kg": 1.19, "Strawberries 400 g": 2.99}),
    "Beverages": ("V", "Drinks Co.", {
        "Orange Juice 1 L": 2.19, "Sparkling Water 1.5 L": 0.69, "Cola 2 L": 1.99, "Green Tea 20 bags": 2.49,
        "Coffee Beans 1 kg": 14.99, "Apple Juice 1 L": 1.79, "Lemonade 1.5 L": 1.49, "Red Wine 750 ml": 8.99,
        "Craft Beer 4-pack": 7.49}),
    "Snacks": ("S", "Snack Foods", {
        "Potato Chips 150 g": 1.79, "Salted Peanuts 200 g": 1.59, "Dark Chocolate 100 g": 1.99,
        "Granola Bars 6-pack": 2.99, "Pretzels 175 g": 1.49, "Popcorn 100 g": 1.29, "Rice Crackers 100 g": 1.19,
        "Trail Mix 200 g": 3.49}),
    "Household": ("H", "Home Supply", {
        "Dish Soap 500 ml": 1.99, "Laundry Detergent 2 L": 9.99, "Paper Towels 4-pack": 4.49,
        "Toilet Paper 9-pack": 5.99, "Trash Bags 20-pack": 3.29, "Sponges 3-pack": 1.49,
        "Glass Cleaner 750 ml": 2.79, "Aluminium Foil 10 m": 2.19}),
    "Frozen": ("F", "Frozen Foods", {
        "Garden Peas 1 kg": 1.89, "Pepperoni Pizza": 3.49, "Vanilla Ice Cream 1 L": 3.99,
        "Fish Fingers 10-pack": 3.29, "Mixed Berries 500 g": 3.79, "Veggie Burgers 4-pack": 3.99,
        "Dumplings 500 g": 4.49}),
    "Personal Care": ("C", "Wellness", {
        "Shampoo 400 ml": 4.49, "Toothpaste 75 ml": 2.29, "Shower Gel 250 ml": 2.49, "Deodorant 150 ml": 3.49,
        "Hand Soap 300 ml": 1.99, "Razor Blades 4-pack": 12.99, "Sunscreen SPF30 200 ml": 9.99,
        "Face Cream 50 ml": 14.99}),
}
# Product lines: (name prefix, name suffix, price factor, share of items).
PRODUCT_LINES = (("", "", 1.0, 0.7), ("Organic ", "", 1.35, 0.15), ("", " Value Pack", 2.4, 0.15))
BRANDS = ("Acme", "Harvest", "Golden", "Nordic", "Sunny", "Blue Bay", "Evergreen", "Maple", "Urban",
          "Alpine", "Fresh Fields", "Northstar")
VENDOR_PREFIXES = ("Northwind", "Harbor", "Greenfield", "Summit", "Blue Ridge", "Riverside", "Oakwood",
                   "Silver Lake", "Meadowbrook", "Pinecrest", "Lakeside", "Redstone", "Willow Creek",
                   "Stonebridge", "Clearwater", "Highland")

_ItemRow = tuple[str, str, str, str, float, float]  # (sku, name, category, vendor_id, unit_cost, unit_price)


@dataclass
class Catalogue:
    """Items and vendors, shared by every store of the chain (arrays are aligned by item, sorted by sku)."""

    skus: list[str]
    names: list[str]
    categories: list[str]
    vendor_ids: list[str]
    unit_cost: np.ndarray
    unit_price: np.ndarray
    reorder_point: np.ndarray
    reorder_qty: np.ndarray
    active: np.ndarray  # bool
    popularity: np.ndarray  # Zipf weights, in shuffled rank order
    vendors: list[tuple[str, str, str, int]]  # (vendor_id, name, email, lead_time_days)


def chain_catalogue(n_items: int, n_vendors: int) -> Catalogue:
    """The chain's catalogue for these sizes (the same for every store and seed)."""
    # Seeded by the sizes only, so every store of a chain (any seed) gets the same catalogue.
    rng = np.random.default_rng([0xCA7A, n_items, n_vendors])
    vendors = _vendors(rng, n_vendors)
    rows = _item_rows(rng, n_items, n_vendors)
    price = np.array([r[5] for r in rows])
    popularity, active = _popularity(rng, price)
    reorder_point, reorder_qty = _reorder_levels(rng, popularity)
    return Catalogue(
        skus=[r[0] for r in rows], names=[r[1] for r in rows], categories=[r[2] for r in rows],
        vendor_ids=[r[3] for r in rows], unit_cost=np.array([r[4] for r in rows]),
        unit_price=price, reorder_point=reorder_point, reorder_qty=reorder_qty,
        active=active, popularity=popularity, vendors=vendors,
    )


def _vendors(rng: np.random.Generator, n_vendors: int) -> list[tuple[str, str, str, int]]:
    """Vendor v mainly serves category v mod 8; fresh goods come quickly, the rest less often."""
    cat_names = list(CATEGORIES)
    vendors = []
    for v in range(n_vendors):
        cat = cat_names[v % len(cat_names)]
        prefix = VENDOR_PREFIXES[v % len(VENDOR_PREFIXES)]
        if v >= len(VENDOR_PREFIXES):
            prefix += f" {v // len(VENDOR_PREFIXES) + 1}"
        name = f"{prefix} {CATEGORIES[cat][1]}"
        slug = "".join(c if c.isalnum() else "-" for c in prefix.lower())
        lead = int(rng.integers(1, 4) if cat in ("Dairy", "Bakery", "Produce") else rng.integers(3, 11))
        vendors.append((f"V{v + 1:03d}", name, f"orders@{slug}.example.com", lead))
    return vendors


def _item_rows(rng: np.random.Generator, n_items: int, n_vendors: int) -> list[_ItemRow]:
    """Items, sorted by sku: unique 5-digit numbers (1..99999, so "X-00000" is never a real sku) with their
    category's letter as prefix."""
    numbers = rng.choice(99_999, size=n_items, replace=False) + 1
    cat_idx = rng.integers(0, len(CATEGORIES), size=n_items)
    line_p = np.array([share for *_, share in PRODUCT_LINES])
    rows = [_item_row(rng, num, c, n_vendors, line_p)
            for num, c in zip(numbers.tolist(), cat_idx.tolist(), strict=True)]
    rows.sort()
    return rows


def _item_row(rng: np.random.Generator, num: int, c: int, n_vendors: int, line_p: np.ndarray) -> _ItemRow:
    """Item ``num`` of category number ``c``: a brand's product in one of the product lines, from a vendor of
    its category, at a shelf price."""
    cat_names = list(CATEGORIES)
    cat = cat_names[c]
    letter, _, products = CATEGORIES[cat]
    product = list(products)[rng.integers(len(products))]
    prefix, suffix, factor, _ = PRODUCT_LINES[rng.choice(len(PRODUCT_LINES), p=line_p)]
    name = f"{BRANDS[rng.integers(len(BRANDS))]} {prefix}{product}{suffix}"
    serving = [v for v in range(n_vendors) if v % len(cat_names) == c] or [c % n_vendors]
    vendor = serving[rng.integers(len(serving))]
    # Typical price, varied by brand and product line, as a shelf price ending in 9, within 0.59-39.89.
    p = float(np.clip(products[product] * factor * rng.lognormal(0.0, 0.12), 0.6, 39.9))
    price = round(round(p, 1) - 0.01, 2)
    cost = max(0.01, round(price * rng.uniform(0.45, 0.75), 2))  # a 25-55% margin
    return (f"{letter}-{num:05d}", name, cat, f"V{vendor + 1:03d}", cost, price)


def _popularity(rng: np.random.Generator, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(popularity, active): Zipf weights over a shuffled rank order, loosely favouring cheap items (the best
    seller is more likely bananas than sunscreen). Discontinued items still sell, but rarely."""
    n_items = len(price)
    rank = np.argsort(np.argsort(np.log(price) + rng.normal(0.0, 1.5, size=n_items)))
    popularity = (rank + 1.0) ** -ZIPF_A
    active = np.ones(n_items, dtype=bool)
    active[rng.choice(n_items, size=round(INACTIVE_SHARE * n_items), replace=False)] = False
    popularity[~active] *= 0.02
    return popularity, active


def _reorder_levels(rng: np.random.Generator, popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reorder_point, reorder_qty): reorder points follow demand, the best seller gets 40, the long tail a few
    units; ~5% get none (items that are ordered by hand). Reorder quantities come in cases of 6."""
    reorder_point = np.rint(40 * (popularity / popularity.max()) ** 0.4).astype(np.int64)
    reorder_point[rng.random(len(popularity)) < 0.05] = 0
    reorder_qty = np.maximum(6, np.ceil(reorder_point * 1.5 / 6) * 6).astype(np.int64)
    return reorder_point, reorder_qty
