"""The made-up world the demo agent serves: customers, addresses, products, orders.

Everything is drawn from a seeded `random.Random`, so a seed always gives the same world.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

FIRST_NAMES = (
    "Amelia", "Noah", "Olivia", "Liam", "Sofia", "Mateo", "Emma", "Lucas", "Aisha", "Omar",
    "Chloe", "Ethan", "Mia", "Hiroshi", "Yuki", "Priya", "Arjun", "Fatima", "Ahmed", "Elena",
    "Ivan", "Zoe", "Jack", "Grace", "Leila", "Samuel", "Nora", "Felix", "Ines", "Tomás",
    "Chen", "Wei", "Aroha", "Kwame", "Amara", "Lars", "Freya", "Diego", "Camila", "Jonas",
    "Hannah", "Marcus", "Ruth", "Kofi", "Anya", "Pablo", "Lucia", "Ben", "Sara", "Malik",
)
LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Müller", "Rossi", "Nguyen", "Kim", "Patel", "Okafor",
    "Kowalski", "Dubois", "Silva", "Tanaka", "Andersson", "O'Brien", "Hernández", "Cohen",
    "Ivanova", "Larsen", "Mensah", "Fischer", "Moreau", "Costa", "Yamamoto", "Singh", "Ali",
    "Novak", "Walker", "Brown", "Wright", "Jensen", "Schmidt", "Lopez", "Baker", "Chowdhury",
    "Haddad", "Petrov", "Clarke", "Murphy", "Reyes",
)
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com",
                 "fastmail.com", "hey.com", "web.de", "orange.fr", "example.org")

# (city, country name, ISO code, postal code pattern: 9 = digit, A = letter)
CITIES = (
    ("Portland", "USA", "US", "97209"), ("Austin", "United States", "US", "78701"),
    ("Chicago", "US", "US", "60614"), ("Boston", "USA", "US", "02116"),
    ("Toronto", "Canada", "CA", "A9A 9A9"), ("Vancouver", "Canada", "CA", "A9A 9A9"),
    ("London", "UK", "GB", "AA9 9AA"), ("Manchester", "United Kingdom", "GB", "A9 9AA"),
    ("Berlin", "Germany", "DE", "99999"), ("Munich", "Deutschland", "DE", "99999"),
    ("Paris", "France", "FR", "99999"), ("Lyon", "France", "FR", "99999"),
    ("Madrid", "Spain", "ES", "99999"), ("Milan", "Italy", "IT", "99999"),
    ("Amsterdam", "the Netherlands", "NL", "9999 AA"), ("Dublin", "Ireland", "IE", "A99 A9A9"),
    ("Sydney", "Australia", "AU", "9999"), ("Melbourne", "Australia", "AU", "9999"),
    ("Stockholm", "Sweden", "SE", "999 99"), ("Copenhagen", "Denmark", "DK", "9999"),
)
STREETS = ("Maple Avenue", "High Street", "Oak Lane", "Rue de la Paix", "Hauptstraße",
           "Calle Mayor", "King Street", "Elm Street", "Harbour Road", "Via Roma",
           "Birch Close", "Queen Street West", "Sunset Boulevard", "Station Road", "Kanalweg")
CURRENCY_BY_COUNTRY = {"US": "USD", "CA": "CAD", "GB": "GBP", "AU": "AUD"}

# (sku, name, category, price in USD)
PRODUCTS = (
    ("SKU-EL-1042", "wireless earbuds", "electronics", 59.99),
    ("SKU-EL-2210", "USB-C charger 65W", "electronics", 34.50),
    ("SKU-EL-3307", "noise-cancelling headphones", "electronics", 189.00),
    ("SKU-EL-4415", "smart watch", "electronics", 229.00),
    ("SKU-EL-5120", "bluetooth speaker", "electronics", 79.95),
    ("SKU-HO-1101", "linen duvet cover", "home", 89.00),
    ("SKU-HO-2240", "memory foam pillow", "home", 39.99),
    ("SKU-HO-3302", "desk lamp", "home", 45.00),
    ("SKU-HO-4418", "wool throw blanket", "home", 64.00),
    ("SKU-KI-1005", "cast iron skillet", "kitchen", 42.00),
    ("SKU-KI-2213", "espresso machine", "kitchen", 349.00),
    ("SKU-KI-3321", "chef's knife", "kitchen", 74.50),
    ("SKU-KI-4409", "glass food containers (set of 10)", "kitchen", 29.99),
    ("SKU-OU-1200", "2-person tent", "outdoor", 149.00),
    ("SKU-OU-2301", "hiking backpack 40L", "outdoor", 119.00),
    ("SKU-OU-3350", "insulated water bottle", "outdoor", 27.50),
    ("SKU-TO-1111", "wooden train set", "toys", 54.00),
    ("SKU-TO-2222", "building blocks (500 pcs)", "toys", 39.00),
    ("SKU-AP-1310", "rain jacket", "apparel", 98.00),
    ("SKU-AP-2420", "merino wool socks (3 pack)", "apparel", 24.00),
    ("SKU-AP-3530", "running shoes", "apparel", 129.00),
    ("SKU-BE-1400", "vitamin C serum", "beauty", 32.00),
    ("SKU-BE-2500", "electric toothbrush", "beauty", 69.00),
    ("SKU-BO-1600", "cookbook: Weeknight Vegetables", "books", 28.00),
    ("SKU-BO-2700", "hardcover notebook", "books", 16.50),
)
CATEGORIES = ("electronics", "home", "kitchen", "outdoor", "toys", "apparel", "beauty", "books")
CARRIERS = ("UPS", "FedEx", "DHL", "USPS", "Royal Mail", "Canada Post", "PostNL")


@dataclass(frozen=True)
class Customer:
    name: str
    email: str
    country: str
    city: str
    country_name: str
    postal_pattern: str

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    @property
    def currency(self) -> str:
        return CURRENCY_BY_COUNTRY.get(self.country, "EUR")


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: float


@dataclass(frozen=True)
class OrderLine:
    product: Product
    qty: int


def customer(rng: random.Random) -> Customer:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}",
                        f"{last}.{first[0]}", f"{first}_{last}{rng.randint(70, 99)}"))
    local = local.lower().replace("'", "").replace(" ", "")
    local = local.translate(str.maketrans("äöüéáíóúñ", "aoueaioun")).replace("ß", "ss")
    city, country_name, code, pattern = rng.choice(CITIES)
    return Customer(f"{first} {last}", f"{local}@{rng.choice(EMAIL_DOMAINS)}", code, city,
                    country_name, pattern)


def order_id(rng: random.Random) -> str:
    return f"ORD-{rng.randint(100000, 999999)}"


def postal_code(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randint(0, 9)) if ch == "9" else
                   rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") if ch == "A" else ch for ch in pattern)


def street_address(rng: random.Random) -> str:
    street = rng.choice(STREETS)
    number = rng.randint(1, 240)
    return f"{street} {number}" if street.endswith(("straße", "weg")) else f"{number} {street}"


def product(rng: random.Random, category: str | None = None) -> Product:
    pool = [p for p in PRODUCTS if category is None or p[2] == category] or list(PRODUCTS)
    return Product(*rng.choice(pool))


def order_lines(rng: random.Random) -> list[OrderLine]:
    picks = rng.sample(PRODUCTS, k=rng.choice((1, 1, 1, 2, 2, 3)))
    return [OrderLine(Product(*p), rng.choice((1, 1, 1, 2, 3))) for p in picks]


def tracking_number(rng: random.Random) -> str:
    return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16))


def money(value: float) -> float:
    return round(value + 1e-9, 2)


def tool_call_id(rng: random.Random) -> str:
    return "call_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
