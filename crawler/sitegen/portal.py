"""Borough notices: short articles inside a page that is mostly menu, like a municipal site.

Every notice carries the same mega-menu (about 7,000 characters of links with one-line descriptions, in plain
divs, not <nav>) above a notice of a few hundred characters, with no <main> or <article> to say which is which.
"""

import random

from .prose import entity_link
from .world import Entity

PORTAL = "/notices"
COUNCIL = "Orrery Borough Council"
PORTAL_FOOTER = "Orrery Borough Council, Town Hall Square. Offices open Monday to Friday."
MENU = {
    "Residents": (
        ("Bins and recycling", "Collection days, bulky waste, garden waste permits and the recycling centres."),
        ("Council tax and rates", "Bands, discounts, payment dates and how to appeal against a valuation."),
        ("Parking permits", "Resident, visitor and business permits, and what each of them allows."),
        ("Report a fallen lamp post", "Street lights, signs and bollards that are damaged or not working."),
        ("Libraries", "Opening hours, the mobile library timetable, reading groups and local history rooms."),
        ("Births, marriages and deaths", "Registering an event, ordering copies and booking a ceremony."),
        ("Housing", "Applying for a home, repairs to council homes, and advice on renting privately."),
        ("Pest control", "Treatments for rats, mice, wasps and other pests, with the charges for each."),
    ),
    "Business": (
        ("Licences and permits", "Street trading, markets, entertainment, alcohol and late night refreshment."),
        ("Business rates", "Reliefs, exemptions, payment plans and how your rateable value is set."),
        ("Food safety", "Registering a food business, hygiene ratings and guidance for new traders."),
        ("Selling to the council", "Current tenders, supplier registration and the council's terms."),
        ("Markets", "Pitches on the weekly markets, fees, and the rules for traders."),
        ("Planning for business", "Change of use, shop fronts and advertising consent for premises."),
    ),
    "Roads and travel": (
        ("Roadworks", "Planned works, closures and diversions across the borough this month."),
        ("Potholes", "Reporting a defect in a road or pavement, and how repairs are prioritised."),
        ("Public transport", "Bus routes, ferry times, concessionary passes and travel for school pupils."),
        ("Winter gritting", "The gritting routes, grit bins and what is treated first in snow and ice."),
        ("Cycling and walking", "Routes, secure cycle parking and the borough's walking trails."),
        ("Blue badges", "Who can apply, how to renew, and where a badge holder may park."),
    ),
    "Planning and building": (
        ("Search planning applications", "Find an application by address or reference and read its documents."),
        ("Apply for planning permission", "What needs permission, the fees, and how long a decision takes."),
        ("Building control", "Inspections, completion certificates and dangerous structures."),
        ("Conservation areas", "Where they are and what extra rules apply to buildings within them."),
        ("Local plan", "The policies that guide development in the borough until the next review."),
        ("Tree preservation orders", "Protected trees, and how to apply for consent to prune or fell one."),
    ),
    "Health and social care": (
        ("Adult social care", "Help at home, care homes, carers' assessments and paying for care."),
        ("Children and families", "Family support, childcare places, fostering and adoption."),
        ("Public health", "Health checks, stopping smoking, and advice during outbreaks."),
        ("Support for carers", "Breaks, allowances and groups for people who look after someone."),
        ("Mental health", "Local services, crisis lines and wellbeing courses run across the borough."),
    ),
    "Leisure and culture": (
        ("Parks and open spaces", "Opening times, play areas, allotments and booking a pitch or court."),
        ("Museums and galleries", "Current exhibitions, collections and visits for schools and groups."),
        ("Sports centres", "Swimming timetables, memberships and classes for all ages."),
        ("Events calendar", "Fairs, concerts, markets and festivals happening across the borough."),
        ("Arts grants", "Funding rounds for local artists, venues and community groups."),
        ("Heritage trails", "Walking routes past listed buildings, with maps to print or download."),
    ),
    "Your council": (
        ("Councillors and committees", "Who represents your ward, meeting dates, agendas and minutes."),
        ("Elections and voting", "Registering to vote, polling stations, postal votes and results."),
        ("Jobs and careers", "Current vacancies, apprenticeships and what it is like to work here."),
        ("Budgets and spending", "How the council spends its money, with payments over the threshold."),
        ("Freedom of information", "Asking for information the council holds and how requests are handled."),
        ("Complaints and feedback", "How to complain, compliment or comment on a council service."),
    ),
}
PORTAL_CHROME_STRINGS = ("Report a fallen lamp post", "Sign in to your account", PORTAL_FOOTER)
KINDS = (
    ("Road closure in {p}", ("The main road through {P} will be closed to traffic from {d1} until {d2} while the "
     "drains beneath it are replaced.", "A signed diversion will run through the neighbouring streets, and "
     "pedestrian access to homes and shops will be kept at all times.", "Bus stops on the closed section will move "
     "to temporary stops at either end of the works.")),
    ("Market days in {p}", ("The weekly market in {P} will move to a new day from {d1}.", "Traders who hold a "
     "pitch have been written to, and the fees for a pitch are unchanged.", "The market will be held on the square "
     "outside the old corn exchange, as before.")),
    ("Consultation on the {p} library", ("The council is asking residents for their views on longer opening hours "
     "at the library in {P}.", "Comments can be made in person at the library or in writing until {d2}.",
     "A report on the replies will go to the committee that meets after {d2}.")),
    ("Flood defences at {p}", ("Work to raise the flood wall along the river at {P} begins on {d1}.", "The "
     "footpath beside the river will be closed in sections while the work is carried out.", "The work is "
     "expected to finish by {d2}, weather permitting.")),
)  # fmt: skip


def portal_page_count(pages: int) -> int:
    """How many notices a site of `pages` pages has."""
    return max(1, pages // 150)


def notice_path(title: str) -> str:
    """Where a borough notice lives."""
    return f"{PORTAL}/{title.lower().replace(' ', '-')}.html"


def notice_body(title: str, place: Entity, rng: random.Random) -> str:
    """The notice itself: heading, publication date and three short paragraphs."""
    kind = next(k for k in KINDS if k[0].format(p=place.name) == title)
    months = ("March", "April", "May", "June", "July", "August", "September")
    d1, d2 = (f"{rng.randint(1, 28)} {m} {rng.randint(1890, 1910)}" for m in rng.sample(months, 2))
    paragraphs = [f"<p>{s.format(P=entity_link(place), d1=d1, d2=d2)}</p>" for s in kind[1]]
    return "\n".join([f"<h1>{title}</h1>", f'<p class="submitted">Published {d1}</p>', *paragraphs])


def notice_titles(places: list[Entity], n: int, rng: random.Random) -> list[tuple[str, Entity]]:
    """(title, place) of `n` notices with distinct titles."""
    out: dict[str, Entity] = {}
    while len(out) < n:
        place, kind = rng.choice(places), rng.choice(KINDS)
        out.setdefault(kind[0].format(p=place.name), place)
    return list(out.items())


def menu_html() -> str:
    """The mega-menu: one panel per audience, each a list of links with a description under each."""
    panels = []
    for heading, items in MENU.items():
        rows = "\n".join(f'<li><a href="#{label.lower().replace(" ", "-")}">{label}</a><p>{text}</p></li>'
                         for label, text in items)  # fmt: skip
        panels.append(f'<div class="panel">\n<h3>{heading}</h3>\n<ul>\n{rows}\n</ul>\n</div>')
    return '<div id="panels" class="dropdowns">\n' + "\n".join(panels) + "\n</div>"


MENU_HTML = menu_html()


def portal_html(title: str, body: str) -> str:
    """A complete notice page: top bar, mega-menu, breadcrumb, the notice, footer."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title} | {COUNCIL}</title>\n'
        f'</head>\n<body>\n<div id="top-bar">\n<div class="logo"><a href="/index.html">{COUNCIL}</a></div>\n'
        '<div class="utility"><a href="#accessibility">Accessibility</a> <a href="#translate">Translate this page</a>'
        ' <a href="#account">Sign in to your account</a></div>\n</div>\n'
        f"{MENU_HTML}\n"
        f'<div class="breadcrumb"><a href="/index.html">Home</a> &#8250; <a href="/about.html#notices">News and '
        f"notices</a> &#8250; {title}</div>\n"
        f'<div class="region-content">\n<div class="node node-notice">\n{body}\n</div>\n</div>\n'
        f'<div class="site-footer">\n<p>{PORTAL_FOOTER}</p>\n<p>&#169; {COUNCIL}</p>\n</div>\n</body>\n</html>\n'
    )
