"""superpos's own GSM8K-format problems: seeded multi-step arithmetic word problems.

Used when the user gives no data file, so the project runs without the public
dataset. Each problem is ``{"question": str, "answer": str}`` in GSM8K's style:
a worked answer, one step a line, every calculation annotated ``<<expr=value>>``
(``*`` and ``/`` inside the brackets), and a last line ``#### <number>``.

Eight templates with two to four steps each (products, sums, differences, exact
divisions, fractions of a quantity); every intermediate and final value is a
non-negative integer. ``generate_problems(n, seed)`` is a pure function of its
arguments: one ``random.Random(seed)`` draws everything.
"""

from __future__ import annotations

import random
from typing import Callable

NAMES = (("Tom", "he", "his"), ("Maria", "she", "her"), ("Ali", "he", "his"), ("Grace", "she", "her"),
         ("Kenji", "he", "his"), ("Lena", "she", "her"), ("Omar", "he", "his"), ("Priya", "she", "her"))
ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "shells")


def calc(expr: str, value: int) -> str:
    """One annotated calculation, GSM8K style: "3 x 12 = <<3*12=36>>36" (``expr`` uses + - * /)."""
    return f"{expr.replace('*', ' x ')} = <<{expr}={value}>>{value}"


class _Steps:
    """Collects the answer's lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def answer(self, value: int) -> str:
        return "\n".join(self.lines + [f"#### {value}"])


def _boxes(rng: random.Random, s: _Steps) -> tuple[str, int]:
    (name, he, _), item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 9), rng.randint(5, 24)
    total = a * b
    c = rng.randint(1, total - 1)
    s.line(f"{name} has {calc(f'{a}*{b}', total)} {item}.")
    s.line(f"After giving away {c}, {he} has {calc(f'{total}-{c}', total - c)} {item} left.")
    q = f"{name} has {a} boxes of {b} {item}. {he.capitalize()} gives away {c}. How many {item} are left?"
    return q, total - c


def _wages(rng: random.Random, s: _Steps) -> tuple[str, int]:
    name, he, _ = rng.choice(NAMES)
    rate, hours, days = rng.randint(8, 30), rng.randint(2, 9), rng.randint(2, 7)
    daily = rate * hours
    s.line(f"{name} earns {calc(f'{rate}*{hours}', daily)} dollars a day.")
    s.line(f"In {days} days {he} earns {calc(f'{daily}*{days}', daily * days)} dollars.")
    q = (f"{name} earns ${rate} an hour and works {hours} hours a day. "
         f"How many dollars does {he} earn in {days} days?")
    return q, daily * days


def _sharing(rng: random.Random, s: _Steps) -> tuple[str, int]:
    name, he, _ = rng.choice(NAMES)
    trays, friends, k = rng.randint(2, 6), rng.randint(2, 6), rng.randint(1, 6)
    per_tray = friends * k
    total = trays * per_tray
    s.line(f"{name} bakes {calc(f'{trays}*{per_tray}', total)} cookies.")
    s.line(f"Each friend gets {calc(f'{total}/{friends}', total // friends)} cookies.")
    q = (f"{name} bakes {trays} trays of {per_tray} cookies and shares them equally among "
         f"{friends} friends. How many cookies does each friend get?")
    return q, total // friends


def _change(rng: random.Random, s: _Steps) -> tuple[str, int]:
    name, he, _ = rng.choice(NAMES)
    a, b, c, d = rng.randint(2, 6), rng.randint(2, 15), rng.randint(1, 5), rng.randint(3, 20)
    x, y = a * b, c * d
    cost = x + y
    bill = 50 if cost < 50 else 100 if cost < 100 else 200
    s.line(f"The notebooks cost {calc(f'{a}*{b}', x)} dollars.")
    s.line(f"The pens cost {calc(f'{c}*{d}', y)} dollars.")
    s.line(f"Together they cost {calc(f'{x}+{y}', cost)} dollars.")
    s.line(f"{he.capitalize()} gets {calc(f'{bill}-{cost}', bill - cost)} dollars in change.")
    q = (f"{name} buys {a} notebooks at ${b} each and {c} pens at ${d} each. {he.capitalize()} pays "
         f"with a ${bill} bill. How many dollars of change does {he} get?")
    return q, bill - cost


def _ages(rng: random.Random, s: _Steps) -> tuple[str, int]:
    name, _, his = rng.choice(NAMES)
    age, older = rng.randint(4, 30), rng.randint(1, 12)
    if (age + older) % 2:
        older += 1
    sister = age + older
    brother = sister // 2
    total = age + sister + brother
    s.line(f"{name}'s sister is {calc(f'{age}+{older}', sister)} years old.")
    s.line(f"{his.capitalize()} brother is {calc(f'{sister}/2', brother)} years old.")
    s.line(f"Together they are {calc(f'{age}+{sister}+{brother}', total)} years old.")
    q = (f"{name} is {age} years old. {his.capitalize()} sister is {older} years older, and "
         f"{his} brother is half as old as the sister. What is the sum of their three ages?")
    return q, total


def _trip(rng: random.Random, s: _Steps) -> tuple[str, int]:
    a, b, c, d = rng.randint(30, 80), rng.randint(2, 5), rng.randint(20, 70), rng.randint(2, 4)
    x, y = a * b, c * d
    s.line(f"First the train travels {calc(f'{a}*{b}', x)} miles.")
    s.line(f"Then it travels {calc(f'{c}*{d}', y)} miles.")
    s.line(f"In total it travels {calc(f'{x}+{y}', x + y)} miles.")
    q = (f"A train travels at {a} miles per hour for {b} hours, then at {c} miles per hour for "
         f"{d} hours. How many miles does it travel in total?")
    return q, x + y


def _fraction(rng: random.Random, s: _Steps) -> tuple[str, int]:
    (name, he, _), item = rng.choice(NAMES), rng.choice(ITEMS)
    k, word = rng.choice(((2, "half"), (3, "a third"), (4, "a quarter"), (5, "a fifth")))
    n = k * rng.randint(2, 12)
    more = rng.randint(1, 20)
    given = n // k
    s.line(f"{name} gives away {calc(f'{n}/{k}', given)} {item}.")
    s.line(f"{he.capitalize()} has {calc(f'{n}-{given}', n - given)} {item} left.")
    s.line(f"After buying more, {he} has {calc(f'{n - given}+{more}', n - given + more)} {item}.")
    q = (f"{name} has {n} {item}. {he.capitalize()} gives {word} of them to a friend and then "
         f"buys {more} more. How many {item} does {he} have now?")
    return q, n - given + more


def _reading(rng: random.Random, s: _Steps) -> tuple[str, int]:
    name, he, _ = rng.choice(NAMES)
    mon = rng.randint(5, 40)
    tue = 2 * mon
    fewer = rng.randint(1, tue - 1)
    wed = tue - fewer
    total = mon + tue + wed
    s.line(f"On Tuesday {name} reads {calc(f'{mon}*2', tue)} pages.")
    s.line(f"On Wednesday {he} reads {calc(f'{tue}-{fewer}', wed)} pages.")
    s.line(f"In the three days {he} reads {calc(f'{mon}+{tue}+{wed}', total)} pages.")
    q = (f"{name} reads {mon} pages on Monday and twice as many on Tuesday. On Wednesday {he} "
         f"reads {fewer} fewer pages than on Tuesday. How many pages does {he} read in the three days?")
    return q, total


TEMPLATES: tuple[Callable[[random.Random, _Steps], tuple[str, int]], ...] = (
    _boxes, _wages, _sharing, _change, _ages, _trip, _fraction, _reading,
)


def generate_problems(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` GSM8K-format problems drawn from ``seed`` (templates chosen uniformly)."""
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        steps = _Steps()
        question, value = rng.choice(TEMPLATES)(rng, steps)
        problems.append({"question": question, "answer": steps.answer(value)})
    return problems
