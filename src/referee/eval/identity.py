"""Sentences that name identity groups, written for referee (CC0): training data for fairness.

A model that learned hate from tweets full of slurs learns that naming a group is
itself a sign of hate, so "I'm a proud gay drummer" scores as hateful (Dixon et al.
2018 call this false-positive bias; the Jigsaw templates and HateCheck's
``ident_neutral_nh`` / ``ident_pos_nh`` functionalities measure it). The cure they
measured is data: benign sentences that name every group, beside hateful ones that
name the same groups, so the name alone carries no signal and the words around it do.

These templates are our own wording, not copied from any evaluation set; the
evaluation sets (HateCheck, the Jigsaw templates, ToxiGen) stay evaluation only.
Each group appears in the same number of benign and hateful sentences. The
sentences are generated deterministically (a seeded sample of the template x group
grid), so the corpus and its hash are reproducible.
"""

from __future__ import annotations

import random
from typing import Any

#: (plural noun phrase, adjective) per group; the adjective fills "a {adj} person".
GROUPS: tuple[tuple[str, str], ...] = (
    ("gay people", "gay"), ("lesbians", "lesbian"), ("bisexual people", "bisexual"),
    ("trans people", "trans"), ("transgender people", "transgender"), ("queer people", "queer"),
    ("LGBTQ people", "LGBTQ"), ("nonbinary people", "nonbinary"), ("homosexuals", "homosexual"),
    ("women", "female"), ("men", "male"), ("Muslims", "Muslim"), ("Jews", "Jewish"), ("Christians", "Christian"),
    ("Catholics", "Catholic"), ("Hindus", "Hindu"), ("Sikhs", "Sikh"), ("Buddhists", "Buddhist"),
    ("atheists", "atheist"), ("Black people", "Black"), ("white people", "white"), ("Asian people", "Asian"),
    ("Latinos", "Latino"), ("Hispanic people", "Hispanic"), ("Mexicans", "Mexican"), ("Africans", "African"),
    ("Arabs", "Arab"), ("Indians", "Indian"), ("Chinese people", "Chinese"), ("immigrants", "immigrant"),
    ("refugees", "refugee"), ("disabled people", "disabled"), ("deaf people", "deaf"), ("blind people", "blind"),
    ("old people", "elderly"), ("Native Americans", "Native American"),
)

#: Benign: the group named as a fact, with pride, in music-platform talk, or in a question.
BENIGN = (
    "I am a {adj} person and I love this band.",
    "As a {adj} songwriter, this album speaks to me.",
    "My best friend is {adj} and she made this playlist.",
    "Our drummer is {adj} and the best musician I know.",
    "{Plural} have always been part of the punk scene.",
    "This playlist celebrates {adj} artists from the last fifty years.",
    "The podcast interviews {plural} about growing up in a small town.",
    "{Plural} deserve the same respect as everyone else.",
    "Proud to be {adj}. Proud of this community.",
    "What was it like for {plural} in the music industry in the 1980s?",
    "Some of my favourite producers are {plural}.",
    "The festival had a panel of {adj} DJs talking about their careers.",
    "I met so many {plural} at the show last night, what a friendly crowd.",
    "Being {adj} has nothing to do with how good your music is.",
    "The documentary is about {adj} musicians and the discrimination they faced.",
    "Happy to see more {plural} on the lineup this year.",
    "My grandmother is {adj} and she still sings in a choir.",
    "A {adj} woman wrote every song on this record.",
    "Saying {plural} are the problem is just racist nonsense.",
    "It is wrong to hate {plural}.",
)

#: Hateful: dehumanisation, contempt, exclusion and calls for harm aimed at the group.
HATEFUL = (
    "{Plural} are vermin and should be treated like it.",
    "I hate {plural}, every single one of them.",
    "{Plural} are a disease on this country.",
    "All {plural} are criminals and liars.",
    "{Plural} should not be allowed anywhere near our kids.",
    "Get rid of {plural}, they ruin everything they touch.",
    "{Plural} are subhuman trash.",
    "Never trust a {adj} person, they are all the same filth.",
    "{Plural} should be kicked out of the country for good.",
    "The world would be better if {plural} just disappeared.",
    "{Plural} are disgusting animals.",
    "No {adj} people allowed at our shows, they make me sick.",
    "{Plural} are too stupid to make real music.",
    "Typical {adj} garbage, they should all be locked up.",
    "{Plural} deserve to suffer for what they are.",
    "Someone should teach {plural} a lesson they won't forget.",
    "{Plural} are parasites living off the rest of us.",
    "I would never let a {adj} person into my house, they are dirty.",
    "Death to {plural}.",
    "{Plural} are worthless and always will be.",
)


def _fill(template: str, plural: str, adj: str) -> str:
    text = template.replace("{Plural}", plural[0].upper() + plural[1:]).replace("{plural}", plural)
    return text.replace("{adj}", adj)


def identity_rows(per_group: int = 8, seed: int = 13) -> list[dict[str, Any]]:
    """``per_group`` benign and ``per_group`` hateful sentences per group, as row dicts.

    Benign sentences are 0 for every category; hateful ones are hate=1, with harassment
    and violence unknown (abuse of a group is not always aimed at a person, and some
    are calls for harm), everything else 0.
    ``group_key`` keeps one template's sentences in one split, so the model is tested
    on wording it did not see."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    zero = {c: 0 for c in ("hate", "harassment", "sexual", "sexual_minors", "violence", "self_harm", "spam",
                           "illegal_goods")}
    hateful = {**zero, "hate": 1}
    del hateful["harassment"], hateful["violence"]
    for plural, adj in GROUPS:
        for kind, templates, labels in (("benign", BENIGN, zero), ("hateful", HATEFUL, hateful)):
            for t in rng.sample(range(len(templates)), per_group):
                rows.append({"id": f"identity-{kind}-{t}-{adj.replace(' ', '_').lower()}",
                             "text": _fill(templates[t], plural, adj), "labels": dict(labels),
                             "group": adj, "group_key": f"identity-{kind}-{t}"})
    return rows
