"""A synthetic team chat with an AI assistant, and questions about it with known answers.

``make_corpus(seed)`` writes about three months of dated work sessions: a user (Sam), the
assistant, and seven colleagues talk about ~40 facts (the payments provider, deploy day,
who is on call, ...) among a lot of small talk and near-miss chatter. Facts are stated,
restated in other words, changed later ("we switched from Stripe to Adyen") and
contradicted by someone who is then corrected. Questions asked in the chat are often
answered a few turns later by a reply that does not repeat the question's words; the
assistant records those replies and corrections as edges, as an agent would with
``connect``. The evaluation questions come with the ids of the memories that answer them:

- paraphrase: a stable fact, asked in words none of its statements use;
- exact: names an order number, function, error code, version or e-mail address;
- current: a fact that changed or was contradicted; the evidence is only the statements
  of its latest value, made since it took that value;
- linked: the answer is a terse reply; only its reply edge leads from the question,
  which shares words with the asking turn, to it;
- temporal: what was said about a fact in one week, with ``since``/``until``.

Nothing is tuned to one retrieval signal: paraphrase questions share few words with any
statement of their fact, current questions come both paraphrased and in the team's own
words, only exact questions name the exact token (and look-alike tokens are common), the
small talk reuses each fact's vocabulary without giving its value, and it has reply edges
of its own, so following edges is not a shortcut to the evidence. Everything comes from ``random.Random(seed)``; no clock is read.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

START = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday
# ~13 weeks of weekdays for the default 60 sessions: some days have no session.
WEEKDAYS_PER_SESSION = 65 / 60

USER = "Sam"
AGENT = "Assistant"
COLLEAGUES = ("Alice", "Bob", "Carol", "Dmitri", "Eun-ji", "Farah", "Gustavo")
MANAGERS = ("Hannah", "Miguel", "Yusuf", "Ingrid")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
QUESTION_KINDS = ("paraphrase", "exact", "current", "linked", "temporal")

DECISION_IMPORTANCE = 0.8  # statements that set or change a fact
NOTE_IMPORTANCE = 0.9  # the assistant's written-down facts


@dataclass(frozen=True)
class Topic:
    """A fact the team talks about. Templates hold ``{v}`` (the value), and in
    ``changes`` also ``{old}``. ``questions`` are how a user would ask for the value,
    in words the statements do not use; they never contain the value."""

    key: str
    values: tuple[str, ...]  # shuffled per corpus: the first is stated, a change takes the next
    fact: str  # the assistant's note
    says: tuple[str, ...]  # ways to state the value
    asks: tuple[str, ...]  # asked in the chat, answered by a terse reply
    questions: tuple[str, ...]
    about: str  # "what did we decide about ...", in other words than the statements
    near: tuple[str, ...]  # on-topic chatter that does not give the value
    changes: tuple[str, ...] = ()  # non-empty: the value changes over time
    contested: bool = False  # someone states a wrong value and is corrected
    subject: str | None = None  # the person the fact is about: never the speaker
    project: str = "atlas"
    name: str = ""  # what the team calls it ("deploy day"), for plain questions


TOPICS: tuple[Topic, ...] = (
    Topic(
        "payments",
        ("Stripe", "Adyen", "Braintree", "Mollie"),
        "the payments provider is {v}",
        (
            "we're going with {v} for payments",
            "{v} will process our card transactions",
            "contract with {v} is signed, they'll handle checkout",
            "{v} is our processor for cards and SEPA from now on",
        ),
        (
            "which provider did we land on for card payments?",
            "remind me who processes our payments?",
        ),
        (
            "who charges our customers when they buy something",
            "which company takes a cut of every sale we make",
            "what are we using to take money from shoppers",
        ),
        "card processing",
        (
            "the payments dashboard is crawling this morning",
            "finance wants a monthly report of payment fees",
        ),
        changes=(
            "we switched from {old} to {v} for payments, better fees in Europe",
            "heads up: card processing moves off {old}, {v} takes over next sprint",
        ),
        name="payments provider",
    ),
    Topic(
        "database",
        ("Postgres", "MySQL", "CockroachDB", "MariaDB"),
        "the main database for Atlas is {v}",
        (
            "we're standardising on {v} for the main database",
            "{v} it is for storage, the ORM already supports it",
            "the schema migration lands on {v} next week",
            "all new tables go into {v}",
        ),
        (
            "what did we pick for the primary database in the end?",
            "which database engine are we on?",
        ),
        (
            "where do we keep the product's records",
            "what engine sits behind our data layer",
            "which SQL system backs the app",
        ),
        "where our data lives",
        (
            "query latency on the reporting replica spiked at noon",
            "the nightly DB dump took forty minutes again",
        ),
        changes=(
            "we're moving the main database from {old} to {v}, migration plan is in the doc",
            "decision reversed: {v} replaces {old} as our primary store",
        ),
        name="main database",
    ),
    Topic(
        "deploy_day",
        ("Thursday", "Tuesday", "Wednesday", "Monday"),
        "production deploys happen on {v}",
        (
            "we ship to production on {v}s",
            "the release train leaves every {v}",
            "{v} is deploy day, don't merge risky stuff the day before",
            "prod deploys are on {v}s",
        ),
        ("what day do we deploy again?", "when does the release train go out?"),
        (
            "which day of the week does new code go live for customers",
            "when do our changes reach users each week",
            "on what weekday do fixes get out the door",
        ),
        "the weekly release schedule",
        (
            "the deploy pipeline flaked twice today",
            "rollback script needs a dry run before the next release",
        ),
        changes=(
            "deploy day moves from {old} to {v} so QA gets an extra day",
            "we're shifting releases off {old}; {v} is the new deploy day",
        ),
        contested=True,
        name="deploy day",
    ),
    Topic(
        "oncall",
        ("Bob", "Carol", "Dmitri", "Farah", "Gustavo"),
        "the on-call engineer this rotation is {v}",
        (
            "{v} is on call this week",
            "the pager goes to {v} for this rotation",
            "if prod breaks tonight, ping {v}, they're on call",
            "{v} has the pager until the next handover",
        ),
        ("who's holding the pager right now?", "who do I call if checkout goes down tonight?"),
        (
            "who should I wake up if the site falls over at 3am",
            "whose turn is it to handle emergencies",
            "who answers alerts overnight",
        ),
        "who was on call",
        (
            "the on-call runbook is out of date",
            "can we tune the disk-space alert, it pages way too often",
        ),
        changes=(
            "on-call rotates: {old} hands the pager to {v} today",
            "{v} takes over on-call from {old}",
        ),
        name="on-call engineer",
    ),
    Topic(
        "office_city",
        ("Lisbon", "Porto", "Berlin", "Valencia"),
        "the team's office is in {v}",
        (
            "we signed the lease for the new office in {v}",
            "the team office will be in {v}, close to the station",
            "{v} won for the office location, desks arrive next month",
        ),
        ("where's the new office going to be?", "did the office location get decided?"),
        (
            "which city are we all moving to for work",
            "where will the team hub be",
            "where are we getting a workplace together",
        ),
        "the office location",
        (
            "the coworking space is fully booked on Fridays",
            "the office move checklist needs an owner",
        ),
        name="office city",
    ),
    Topic(
        "alice_meetings",
        ("before 10am", "right after lunch", "around 4pm", "at 8:30 in the morning"),
        "Alice prefers meetings {v}",
        (
            "Alice prefers meetings {v}",
            "Alice asked that syncs be booked {v}",
            "book Alice {v}, she's sharpest then",
        ),
        ("when does Alice like to have meetings?", "what's a good slot to grab Alice?"),
        (
            "when should I schedule time with Alice",
            "what part of the day works for a call with Alice",
            "when is Alice happiest to talk",
        ),
        "Alice's calendar",
        ("Alice's calendar is packed this week", "Alice is out on Thursday afternoon"),
        contested=True,
        subject="Alice",
        name="best meeting time for Alice",
    ),
    Topic(
        "bob_manager",
        MANAGERS,
        "Bob reports to {v}",
        (
            "Bob reports to {v} now",
            "{v} is Bob's manager after the reorg",
            "Bob's one-on-ones are with {v}",
        ),
        ("who's Bob's manager these days?", "who does Bob report to?"),
        ("who signs off on Bob's vacation requests", "whose team is Bob in", "who is Bob's boss"),
        "Bob's reporting line",
        ("Bob's performance review is next month", "Bob is interviewing candidates all afternoon"),
        changes=(
            "reorg news: Bob moves from {old}'s group to {v}'s",
            "Bob now reports to {v} instead of {old}",
        ),
        subject="Bob",
        name="manager Bob reports to",
    ),
    Topic(
        "staging_url",
        (
            "https://staging.atlas-app.example",
            "https://stage-eu.atlas-app.example",
            "https://preview.atlas-app.example",
        ),
        "the staging environment lives at {v}",
        (
            "staging is at {v}",
            "test your branch on {v} before asking for review",
            "new staging URL: {v}",
        ),
        ("what's the staging link again?", "where do I test before prod?"),
        (
            "which web address is our test environment",
            "where can I click around a pre-release build",
            "what link shows the version QA is checking",
        ),
        "the test environment address",
        ("staging is down while the database restores", "who reset the staging seed data?"),
        changes=(
            "staging moved from {old} to {v}, update your bookmarks",
            "{old} is gone, use {v} for staging",
        ),
        name="staging URL",
    ),
    Topic(
        "cloud_budget",
        ("$42,000", "$38,500", "$55,000", "$47,000"),
        "the Q1 cloud budget is {v}",
        (
            "finance approved {v} for cloud spend this quarter",
            "our AWS budget for Q1 is capped at {v}",
            "we have {v} to spend on infrastructure until April",
        ),
        ("how much can we spend on cloud this quarter?", "what's the infra budget?"),
        (
            "how much money do we have for servers until spring",
            "what's the ceiling on hosting costs",
            "how much are we allowed to pay Amazon before the end of March",
        ),
        "the hosting money",
        (
            "the AWS bill spiked because of the load test",
            "we should tag resources so the cost report makes sense",
        ),
        changes=(
            "budget update: cloud spend goes from {old} to {v}",
            "finance revised our infra budget from {old} to {v}",
        ),
        contested=True,
        name="cloud budget",
    ),
    Topic(
        "bob_diet",
        ("vegetarian", "vegan", "pescatarian", "gluten-free"),
        "Bob is {v}",
        (
            "Bob's {v}, keep that in mind for the team dinner",
            "for catering: Bob eats {v}",
            "Bob went {v} a couple of years ago",
        ),
        ("does Bob have any food restrictions?", "anything Bob can't eat?"),
        (
            "what should I order for Bob at the offsite",
            "which menu option suits Bob",
            "what food does Bob avoid",
        ),
        "Bob's meals",
        ("the team dinner is at 7 on Thursday", "the caterer needs the headcount by Friday"),
        subject="Bob",
        name="diet Bob follows",
    ),
    Topic(
        "eunji_allergy",
        ("peanuts", "shellfish", "sesame", "tree nuts"),
        "Eun-ji is allergic to {v}",
        (
            "Eun-ji is allergic to {v}, tell the restaurant",
            "no {v} anywhere near Eun-ji's food please, allergy",
        ),
        ("does Eun-ji have an allergy I should tell the restaurant about?",),
        (
            "what ingredient makes Eun-ji sick",
            "what must the kitchen keep off Eun-ji's plate",
            "is there something Eun-ji reacts badly to when eating",
        ),
        "Eun-ji's food restrictions",
        ("Eun-ji brought cookies back from Seoul",),
        subject="Eun-ji",
        name="allergy Eun-ji has",
    ),
    Topic(
        "ci",
        ("GitHub Actions", "Buildkite", "CircleCI", "GitLab CI"),
        "CI runs on {v}",
        (
            "CI runs on {v} now",
            "we moved the test pipeline to {v}",
            "{v} runs our builds, ask Dmitri for access",
        ),
        ("which CI are we using now?", "where do the builds run?"),
        (
            "what service checks our pull requests automatically",
            "where do the automated checks happen when I push",
            "what tool tells me my branch failed the tests",
        ),
        "the build service",
        ("CI is red on main again", "the integration tests take 25 minutes, can we shard them?"),
        changes=(
            "we're migrating CI from {old} to {v}, cheaper runners",
            "{old} is retired; all pipelines run on {v}",
        ),
        name="CI system",
    ),
    Topic(
        "code_freeze",
        ("13 March", "20 March", "27 March", "6 March"),
        "the code freeze starts on {v}",
        (
            "code freeze begins {v}",
            "no feature merges after {v}",
            "we lock the branch on {v} for the release",
        ),
        ("when is the freeze?", "what's the last day to merge features?"),
        (
            "until what date can I still land new work",
            "when do we stop accepting new functionality before launch",
            "what's the deadline for finishing features",
        ),
        "the merge cutoff",
        (
            "let's not argue about the freeze in standup",
            "I'll make a list of what must land before the release",
        ),
        changes=("code freeze moves from {old} to {v}", "freeze moves to {v}, not {old}"),
        contested=True,
        name="code freeze date",
    ),
    Topic(
        "launch_date",
        ("7 April", "14 April", "21 April", "31 March"),
        "the public launch is on {v}",
        (
            "we launch publicly on {v}",
            "{v} is go-live for the public beta",
            "marketing is planning around a {v} launch",
        ),
        ("when are we launching?", "is go-live still on the same date?"),
        (
            "when do customers first get access to the product",
            "what day does the product open to everyone",
            "when is the big release to the world",
        ),
        "opening to the public",
        ("the launch checklist has 40 items left", "the PR agency wants quotes from customers"),
        changes=("launch moves from {old} to {v}", "new go-live date: {v} (was {old})"),
        name="launch date",
    ),
    Topic(
        "northwind_contact",
        (
            "ops@northwind.example",
            "billing@northwind.example",
            "finance-team@northwind.example",
            "ap@northwind.example",
        ),
        "Northwind's billing contact is {v}",
        (
            "send Northwind's invoices to {v}",
            "Northwind's contact for billing is {v}",
            "for Northwind, email {v} about payments",
        ),
        ("who do we email at Northwind about invoices?", "what's Northwind's billing address?"),
        (
            "where should the Northwind paperwork go",
            "which inbox at Northwind deals with money matters",
            "who at Northwind receives our bills",
        ),
        "the Northwind contact",
        ("Northwind paid late again", "Northwind wants a call about their renewal"),
        changes=(
            "Northwind changed their billing contact from {old} to {v}",
            "stop using {old} for Northwind, it's {v} now",
        ),
        name="Northwind billing contact",
    ),
    Topic(
        "monitoring",
        ("Datadog", "Grafana Cloud", "Honeycomb", "New Relic"),
        "our monitoring vendor is {v}",
        (
            "we picked {v} for metrics and traces",
            "dashboards and alerts live in {v}",
            "{v} for observability, the trial converted",
        ),
        ("what are we using for monitoring?",),
        (
            "where can I look at graphs of how the servers are doing",
            "which tool shows us latency charts",
            "where do I check whether the servers are healthy",
        ),
        "monitoring",
        ("the p99 graph looks weird since Tuesday", "we need an alert on queue depth"),
        contested=True,
        name="monitoring tool",
    ),
    Topic(
        "cloud_region",
        ("eu-west-1", "eu-central-1", "eu-north-1", "us-east-1"),
        "production runs in the {v} region",
        (
            "prod lives in {v}",
            "we deploy to {v} because of data residency",
            "all customer data stays in {v}",
        ),
        ("which AWS region is prod in?",),
        (
            "in which part of the world do our servers sit",
            "where geographically are our machines hosted",
            "which Amazon location hosts production",
        ),
        "hosting geography",
        ("latency from Brazil is terrible", "the DR plan needs a second region"),
        name="AWS region for prod",
    ),
    Topic(
        "dmitri_location",
        ("Tbilisi", "Istanbul", "Athens", "Yerevan"),
        "Dmitri works remotely from {v}",
        (
            "Dmitri works from {v} now, a few hours ahead of us",
            "calls after 5 are late for Dmitri, he's in {v}",
        ),
        ("where is Dmitri based?",),
        (
            "what city does Dmitri live in",
            "which town is Dmitri dialling in from",
            "which country is Dmitri dialling in from",
        ),
        "where Dmitri works from",
        ("Dmitri's connection keeps dropping", "Dmitri sent photos of the mountains"),
        subject="Dmitri",
        name="city Dmitri works from",
    ),
    Topic(
        "standup_time",
        ("9:30", "10:00", "9:15", "10:30"),
        "daily standup is at {v}",
        ("standup is at {v} every day", "daily sync starts {v} sharp", "let's keep standup at {v}"),
        ("what time is standup?",),
        (
            "when does the morning team check-in happen",
            "what time should I be online for the daily huddle",
            "when is the daily status meeting",
        ),
        "the morning check-in",
        ("standup ran long again", "can we do async standup on Fridays?"),
        changes=(
            "standup moves from {old} to {v} starting Monday",
            "new standup time: {v}, {old} clashed with school runs",
        ),
        contested=True,
        name="standup time",
    ),
    Topic(
        "retro",
        (
            "every other Friday",
            "every Friday",
            "on the last Thursday of the month",
            "every other Wednesday",
        ),
        "retrospectives happen {v}",
        ("retros are {v}", "we do the retrospective {v}", "let's hold retro {v}"),
        ("how often do we do retros?",),
        (
            "how frequently does the team look back on what went well",
            "when do we reflect on the sprint together",
            "how often do we talk about what to improve as a team",
        ),
        "the retrospective rhythm",
        ("the retro board is in Miro", "last retro had too many action items"),
        name="retro schedule",
    ),
    Topic(
        "carol_vacation",
        ("16 to 27 February", "2 to 13 March", "23 February to 6 March"),
        "Carol is on vacation {v}",
        (
            "Carol is off {v}, Bob covers her reviews",
            "Carol booked her holiday: {v}",
            "Carol will be away {v}, no laptop",
        ),
        ("when is Carol on holiday?",),
        (
            "which dates will Carol be unreachable",
            "when is Carol out of office",
            "when can't I reach Carol",
        ),
        "Carol's time off",
        ("Carol needs someone to water her plants",),
        subject="Carol",
        name="vacation Carol booked",
    ),
    Topic(
        "team_lunch",
        ("the ramen place on Rua Augusta", "Taberna da Rua", "the Georgian bakery", "Pho Saigon"),
        "team lunch is at {v}",
        ("Friday team lunch is at {v}", "booked {v} for the team lunch", "team lunch: {v}, 12:30"),
        ("where's team lunch this time?",),
        (
            "where are we all eating together on Friday",
            "which restaurant for the group meal",
            "where do we go for the Friday meal",
        ),
        "the group meal",
        ("I'm starving", "lunch was great today"),
        name="team lunch spot",
    ),
    Topic(
        "password_manager",
        ("1Password", "Bitwarden", "Keeper", "Dashlane"),
        "shared secrets live in {v}",
        (
            "all shared credentials go in {v}",
            "we use {v} vaults for secrets",
            "put the API keys in {v}, never in Slack",
        ),
        ("where do we keep shared passwords?",),
        (
            "where should I save the login for the vendor portal",
            "what app do we use to share logins safely",
            "where are the team's shared logins kept",
        ),
        "storing logins",
        ("2FA on the AWS root account is done", "someone leaked a token in a screenshot"),
        name="password manager",
    ),
    Topic(
        "feature_flags",
        ("LaunchDarkly", "Unleash", "Flagsmith", "a homegrown flag service"),
        "feature flags are managed with {v}",
        (
            "feature flags go through {v}",
            "we toggle features in {v}",
            "{v} for flags, Gustavo set it up",
        ),
        ("what do we use for feature flags?",),
        (
            "how do we switch new functionality on for a few customers only",
            "what lets us turn things on per customer",
            "how do we hide unfinished work from most users",
        ),
        "the toggling tool",
        ("clean up stale flags after the launch",),
        changes=("flags move from {old} to {v}", "we're dropping {old} for {v}"),
        name="feature flag tool",
    ),
    Topic(
        "frontend",
        ("React", "Svelte", "Vue", "SolidJS"),
        "the web frontend is written in {v}",
        (
            "the web app is built with {v}",
            "we write the frontend in {v}",
            "{v} for the UI, TypeScript everywhere",
        ),
        ("what's the frontend framework?",),
        (
            "which library do the screens in the browser use",
            "what is the customer-facing interface coded with",
            "which JavaScript toolkit powers the website",
        ),
        "the browser app stack",
        ("the bundle size doubled", "Storybook is broken on main"),
        name="frontend framework",
    ),
    Topic(
        "rate_limit",
        (
            "100 requests per second",
            "50 requests per second",
            "200 requests per second",
            "20 requests per second",
        ),
        "the public API rate limit is {v} per key",
        (
            "API keys are limited to {v}",
            "we throttle clients at {v}",
            "rate limit for the public API: {v}",
        ),
        ("what's our API rate limit?",),
        (
            "how many calls can a customer make before getting a 429",
            "how hard can an integration hit us before being blocked",
            "how much traffic can one customer's integration push at us",
        ),
        "API throttling",
        ("someone is scraping the API again", "the API docs need a quickstart"),
        changes=(
            "API rate limit changes from {old} to {v} per key",
            "new rate limit after the abuse incident: {v}, was {old}",
        ),
        contested=True,
        name="API rate limit",
    ),
    Topic(
        "sla",
        ("99.9%", "99.95%", "99.5%", "99.99%"),
        "the uptime SLA is {v}",
        (
            "we promise {v} uptime in the contract",
            "SLA is {v} availability",
            "our availability target is {v}",
        ),
        ("what uptime do we guarantee?",),
        (
            "how reliable did we tell customers the service would be",
            "what percentage of the time must the service stay reachable",
            "how much downtime did we promise is acceptable",
        ),
        "the reliability promise",
        ("we had 12 minutes of downtime on Monday",),
        name="uptime SLA",
    ),
    Topic(
        "eunji_birthday",
        ("3 March", "17 February", "24 March", "12 February"),
        "Eun-ji's birthday is {v}",
        ("Eun-ji's birthday is {v}, let's get a cake", "don't forget: {v} is Eun-ji's birthday"),
        ("when is Eun-ji's birthday?",),
        (
            "what day should we bring cake for Eun-ji",
            "when was Eun-ji born",
            "when do we celebrate Eun-ji turning a year older",
        ),
        "Eun-ji's celebration",
        (),
        subject="Eun-ji",
        name="date of Eun-ji's birthday",
    ),
    Topic(
        "hiring",
        ("two backend engineers", "one designer", "three backend engineers", "a data engineer"),
        "we are hiring {v}",
        (
            "headcount approved: {v}",
            "we have budget for {v} this quarter",
            "the job posts for {v} go live Monday",
        ),
        ("how many people are we hiring?",),
        (
            "which positions are open on the team",
            "who are we recruiting right now",
            "what roles have open job ads",
        ),
        "recruiting",
        ("the take-home exercise needs an update", "I have two interviews tomorrow"),
        changes=("hiring plan changed: {v} instead of {old}",),
        name="hiring plan",
    ),
    Topic(
        "interview_owner",
        ("Carol", "Farah", "Gustavo", "Alice"),
        "{v} owns the interview loop",
        ("{v} coordinates the hiring interviews", "send candidates to {v}, who runs the loop"),
        ("who organises interviews?",),
        (
            "who do I talk to about scheduling a candidate",
            "who is in charge of recruiting logistics",
            "who sets up candidate conversations",
        ),
        "interview coordination",
        (),
        name="interview loop owner",
    ),
    Topic(
        "incident_channel",
        ("#atlas-incidents", "#inc-atlas", "#war-room", "#prod-fire"),
        "incidents are coordinated in {v}",
        (
            "incidents go in {v}",
            "open a thread in {v} when prod breaks",
            "all outage chatter in {v} please",
        ),
        ("where do we talk during an outage?",),
        (
            "which Slack room should I join when the site is down",
            "where do people gather when there's an emergency",
            "where do we coordinate when production is on fire",
        ),
        "emergency chat",
        ("the postmortem for last week's outage is half written",),
        contested=True,
        name="incident channel",
    ),
    Topic(
        "translations",
        ("Lokalise", "Crowdin", "Phrase", "Transifex"),
        "translations are managed in {v}",
        (
            "we use {v} for translations",
            "strings get translated through {v}",
            "{v} for localisation, the German strings are done",
        ),
        ("what tool do we use for translations?",),
        (
            "how do we get the app into Portuguese and German",
            "where do the language files get worked on",
            "what do we use to manage non-English text",
        ),
        "localisation",
        (),
        name="translation tool",
    ),
    Topic(
        "support_tool",
        ("Zendesk", "Intercom", "Help Scout", "Front"),
        "customer support runs on {v}",
        (
            "support tickets live in {v}",
            "we answer customers in {v}",
            "{v} for support, the macros are set up",
        ),
        ("where do support tickets go?",),
        (
            "where do complaints from users end up",
            "what do we answer customer emails with",
            "which helpdesk product do agents work in",
        ),
        "the helpdesk",
        ("the support queue is at 80 open tickets",),
        changes=(
            "support moves from {old} to {v} next month",
            "bye {old}, support runs in {v} now",
        ),
        name="support tool",
    ),
    Topic(
        "analytics",
        ("Amplitude", "Mixpanel", "PostHog", "Heap"),
        "product analytics use {v}",
        (
            "product analytics go to {v}",
            "we track events in {v}",
            "funnels are in {v}, ask Farah for a seat",
        ),
        ("which analytics tool do we use?",),
        (
            "where can I see how many people finish signing up",
            "what shows us what users click on",
            "where do we look at user behaviour",
        ),
        "usage tracking",
        (),
        name="analytics tool",
    ),
    Topic(
        "billing_owner",
        ("Dmitri", "Bob", "Gustavo", "Farah"),
        "{v} owns the billing service",
        (
            "{v} owns the billing service",
            "billing service questions go to {v}",
            "{v} is the code owner for billing",
        ),
        ("who owns billing?",),
        (
            "who should review changes to how we charge customers",
            "who's responsible for the invoicing code",
            "who maintains the code that sends invoices",
        ),
        "billing ownership",
        (),
        changes=("{v} takes over the billing service from {old}",),
        name="billing service owner",
    ),
    Topic(
        "backup_retention",
        ("30 days", "90 days", "14 days", "one year"),
        "database backups are kept for {v}",
        ("backups are kept for {v}", "we retain snapshots for {v}", "backup retention is {v}"),
        ("how long do we keep backups?",),
        (
            "how far back can we restore data if something gets deleted",
            "for how long can we recover an old copy of the data",
            "how old can a restorable copy of the data be",
        ),
        "the restore window",
        (),
        changes=("backup retention goes from {old} to {v} for the audit",),
        name="backup retention period",
    ),
    Topic(
        "payment_terms",
        ("net 30", "net 14", "net 45", "due on receipt"),
        "default invoice terms are {v}",
        ("invoices default to {v}", "standard payment terms: {v}", "we bill customers {v}"),
        ("what are our standard payment terms?",),
        (
            "how long do clients have to pay us",
            "when is money owed after we send a bill",
            "how many days do customers get to settle an invoice",
        ),
        "customer payment deadlines",
        (),
        changes=("payment terms change from {old} to {v} for new customers",),
        contested=True,
        name="default payment terms",
    ),
    Topic(
        "ios_minimum",
        ("iOS 16", "iOS 15", "iOS 17", "iOS 14"),
        "the mobile app supports {v} and later",
        (
            "the app supports {v} and up",
            "minimum {v} for the iPhone app",
            "we dropped everything below {v}",
        ),
        ("what's the oldest iOS we support?",),
        (
            "which Apple phones can still run our app",
            "will our mobile app work on an old handset",
            "what's the oldest iPhone software we still work on",
        ),
        "phone compatibility",
        (),
        name="minimum iOS version",
    ),
    Topic(
        "orion_database",
        ("DynamoDB", "MongoDB", "Postgres", "Cassandra"),
        "Orion stores its data in {v}",
        (
            "for Orion we're using {v}",
            "Orion's storage layer is {v}",
            "Orion writes everything to {v}",
        ),
        ("what's Orion built on for storage?",),
        (
            "where does the Orion project keep its records",
            "what holds Orion's data",
            "which storage engine did Orion pick",
        ),
        "Orion's storage",
        ("Orion's write path is slower than expected",),
        project="orion",
        name="Orion database",
    ),
    Topic(
        "orion_customer",
        ("Globex", "Initech", "Umbrella", "Hooli"),
        "Orion's first customer is {v}",
        (
            "{v} signed as Orion's pilot customer",
            "first Orion customer: {v}",
            "Orion pilots with {v} in March",
        ),
        ("who's the pilot customer for Orion?",),
        (
            "which company will try Orion before anyone else",
            "who gets Orion first",
            "which client is piloting Orion",
        ),
        "Orion's first client",
        ("the Orion pitch deck needs a customer logo slide",),
        changes=("{old} dropped out; {v} is Orion's pilot now",),
        project="orion",
        name="Orion pilot customer",
    ),
    Topic(
        "orion_lead",
        ("Eun-ji", "Gustavo", "Farah", "Carol"),
        "{v} leads Orion technically",
        ("{v} is tech lead on Orion", "Orion architecture decisions go through {v}"),
        ("who leads Orion?",),
        (
            "who makes the technical calls on Orion",
            "who is the senior engineer in charge of Orion",
            "who decides how Orion gets built",
        ),
        "Orion's leadership",
        (),
        project="orion",
        name="Orion tech lead",
    ),
    Topic(
        "orion_demo",
        ("12 February", "26 February", "5 March", "19 March"),
        "the Orion demo is on {v}",
        ("Orion demo is {v}", "we show Orion to the board on {v}"),
        ("when is the Orion demo?",),
        ("when do we present Orion to leadership", "what date is Orion being shown off"),
        "the Orion showcase",
        ("the Orion demo script is still rough",),
        changes=("Orion demo moved from {old} to {v}",),
        project="orion",
        name="Orion demo date",
    ),
)

# Generic ways to change, correct and answer; topic templates carry the topic's words.
CHANGES = (
    "change of plan: {v} instead of {old}",
    "{old} is out, {v} is in",
    "update: it's {v} now, not {old}",
)
WRONG_PREFIXES = ("", "I think ", "pretty sure ", "as far as I remember, ")
CORRECTIONS = (
    "no, it's {v} — {wrong} was never agreed",
    "small correction: {v}, not {wrong}",
    "that's not right, it's {v}",
    "{wrong}? no, {v}. double-checked",
)
STALE_CORRECTIONS = (
    "that's outdated — {wrong} was the old plan, it's {v} now",
    "careful, {wrong} changed; it's {v}",
)
REPLIES = (
    "{v}.",
    "{v} — since last week.",
    "it's {v}",
    "{v}, it's in the wiki",
    "{v} as far as I know",
    "{v}. confirmed this morning",
)
NOTES = ("Fact: {fact} (decided {date})", "Fact: {fact} (as of {date})", "Noted {date}: {fact}")
CURRENT_WRAPPERS = (
    "{q} now?",
    "{q} these days?",
    "{q} at the moment?",
    "after all the back and forth, {q}?",
    "{q}, as of today?",
)
# The plain way to ask for a value that changed, in the team's own words for it.
CURRENT_PLAIN = (
    "what's the {name} now?",
    "what's the current {name}?",
    "remind me, what's the {name} these days?",
    "has the {name} changed? what is it now?",
    "latest on the {name}?",
)
TEMPORAL_TEMPLATES = (
    "In the week of {week}, what was the plan for {about}?",
    "What did we decide about {about} the week of {week}?",
    "Week of {week}: where did we stand on {about}?",
    "What were people saying about {about} during the week of {week}?",
)


# -- things asked by an exact token: order numbers, functions, error codes, versions, e-mails

WAREHOUSES = ("Rotterdam", "Leipzig", "Madrid", "Lyon", "Milan")
CITIES = ("Dover", "Basel", "Oslo", "Zurich", "Gdansk")
ORGS = ("Northwind", "Globex", "Initech", "Umbrella", "Hooli", "Stark")
SLOTS: dict[str, tuple[str, ...]] = {
    "warehouse": WAREHOUSES,
    "city": CITIES,
    "item": ("lid", "screen", "hinge", "panel", "charger"),
    "org": ORGS,
    "qty": ("40", "120", "250", "500"),
    "person": COLLEAGUES,
    "field": ("VAT id", "due date", "currency", "customer name"),
    "meaning": (
        "a rejected direct-debit mandate",
        "a VAT number that failed validation",
        "a PDF renderer timeout",
        "a webhook signature mismatch",
        "a currency the merchant hasn't enabled",
        "an expired card",
        "a duplicate invoice number",
        "a stale exchange-rate feed",
    ),
    "bug": (
        "the CSV export encoding",
        "duplicate reminder emails",
        "rounding in tax totals",
        "slow PDF rendering",
        "the login redirect loop",
    ),
    "feature": (
        "the bulk invoice import",
        "dark mode",
        "credit notes",
        "the Xero sync",
        "SSO login",
    ),
    "role": (
        "procurement lead",
        "CTO",
        "accounts payable clerk",
        "office manager",
        "head of finance",
    ),
    "doc": ("signed DPA", "Q4 invoice", "security questionnaire", "W-8BEN form"),
}


@dataclass(frozen=True)
class EntityKind:
    name: str
    facts: tuple[str, ...]
    followups: tuple[str, ...]
    mentions: tuple[str, ...]  # name the token, say nothing about it
    questions: tuple[str, ...]


ENTITY_KINDS = (
    EntityKind(
        "order",
        (
            "{tok} shipped to the {warehouse} warehouse by mistake, reshipping today",
            "{tok} was charged twice, I refunded the duplicate",
            "{tok} is stuck in customs in {city}",
            "the customer cancelled {tok}; stock goes back to {warehouse}",
            "{tok} arrived with a cracked {item}, replacement is on the way",
            "{tok} is the bulk order from {org}, {qty} units, ships Friday",
        ),
        (
            "update on {tok}: the customer confirmed it arrived",
            "{tok} is sorted, the courier picked it up this morning",
            "finance says the refund for {tok} cleared",
        ),
        (
            "looking at {tok} now",
            "can someone check {tok} when you have a minute?",
            "adding {tok} to the support digest",
        ),
        (
            "what happened with order {tok}?",
            "any news on {tok}?",
            "why was {tok} flagged?",
            "what's the story with {tok}?",
        ),
    ),
    EntityKind(
        "function",
        (
            "`{tok}` crashes on negative quantities, {person} is fixing it",
            "{tok} is quadratic on big files; {person} is profiling it",
            "{tok} silently drops rows with an empty {field}",
            "{tok} assumes UTC, so invoices near midnight get the wrong date",
            "{tok} retries forever if the bank API times out",
        ),
        ("the fix for {tok} is merged", "{person} added tests for {tok}"),
        ("reading through {tok} now", "I touched {tok} in my PR, just formatting"),
        (
            "what's wrong with {tok}?",
            "is there a known problem in {tok}?",
            "what did we find out about {tok}?",
        ),
    ),
    EntityKind(
        "error",
        (
            "{tok} means {meaning}",
            "if you see {tok}, it's {meaning}",
            "customers hitting {tok}: {meaning}",
        ),
        ("we added a clearer message for {tok}", "the {tok} count dropped after the fix"),
        ("another {tok} in the logs", "saw {tok} twice this morning"),
        (
            "what does error {tok} mean?",
            "a customer got {tok}, what's that about?",
            "what causes {tok}?",
        ),
    ),
    EntityKind(
        "version",
        (
            "{tok} fixes {bug}",
            "{tok} is what's pinned in production",
            "{tok} broke {feature}, roll back if you see it",
            "{tok} adds {feature}",
        ),
        ("{tok} is now rolled out to all customers", "release notes for {tok} are published"),
        ("tagging {tok} now", "is anyone still on {tok}?"),
        (
            "what's in {tok}?",
            "what changed in release {tok}?",
            "anything I should know about {tok}?",
        ),
    ),
    EntityKind(
        "email",
        (
            "{tok} is the {role} at {org}",
            "{tok} asked for a copy of the {doc}",
            "{tok} wants the renewal quote by Friday",
        ),
        ("{tok} replied, all good on their side",),
        ("cc'ing {tok} on the thread", "got an out-of-office from {tok}"),
        ("who is {tok}?", "what did {tok} want from us?", "do we know anything about {tok}?"),
    ),
)

_VERBS = (
    "parse",
    "validate",
    "render",
    "sync",
    "compute",
    "normalize",
    "retry",
    "merge",
    "export",
    "apply",
    "load",
    "reconcile",
)
_NOUNS = (
    "invoice_lines",
    "vat_number",
    "pdf_footer",
    "ledger_entries",
    "tax_total",
    "iban",
    "webhook_delivery",
    "customer_records",
    "csv_batch",
    "discount_codes",
    "currency_rates",
    "credit_notes",
)
_FIRST = ("jane", "omar", "lena", "piotr", "mei", "raj", "sofia", "tom", "ines", "kofi")
_LAST = ("doe", "khan", "novak", "silva", "chen", "berg", "okafor", "rossi")


def _swap_digits(rng: random.Random, digits: str) -> str:
    i = rng.randrange(len(digits) - 1)
    return digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]


def _token(rng: random.Random, kind: str, used: set[str]) -> str:
    """A new token; often a near twin of one already used (swapped digits, same noun),
    because real logs are full of look-alikes."""
    for _ in range(1000):
        same_kind = sorted(t for t in used if _kind_of(t) == kind)
        twin = same_kind and rng.random() < 0.35
        if kind == "order":
            base = rng.choice(same_kind)[4:] if twin else str(rng.randint(10000, 99999))
            tok = "ORD-" + (_swap_digits(rng, base) if twin else base)
        elif kind == "error":
            base = rng.choice(same_kind)[1:] if twin else str(rng.randint(1000, 1999))
            tok = "E" + (_swap_digits(rng, base) if twin else base)
        elif kind == "version":
            tok = f"v{rng.randint(2, 3)}.{rng.randint(0, 6)}.{rng.randint(0, 9)}"
        elif kind == "function":
            tok = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}"
        else:
            org = rng.choice(ORGS).lower()
            local = rng.choice(
                (
                    f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}",
                    rng.choice(("ops", "accounts", "legal", "it")),
                )
            )
            tok = f"{local}@{org}.example"
        if tok not in used and tok != "ops@northwind.example":
            return tok
    raise RuntimeError(f"ran out of distinct {kind} tokens")


def _kind_of(token: str) -> str:
    if token.startswith("ORD-"):
        return "order"
    if re.fullmatch(r"E\d{4}", token):
        return "error"
    if re.fullmatch(r"v\d+\.\d+\.\d+", token):
        return "version"
    return "email" if "@" in token else "function"


# -- questions asked in the chat and answered a few turns later (the "linked" questions)


@dataclass(frozen=True)
class Thread:
    """``ask`` and ``question`` hold ``{slot}``; ``replies`` hold ``{v}`` and never the
    question's words, so only the reply edge connects the answer to the question."""

    key: str
    slots: tuple[str, ...]
    values: Callable[[random.Random], str]
    asks: tuple[str, ...]
    replies: tuple[str, ...]
    questions: tuple[str, ...]


def _wifi(rng: random.Random) -> str:
    words = ("pelican", "harbour", "tram", "sardine", "azulejo", "comet", "lantern", "maple")
    return f"{rng.choice(words)}-{rng.choice(words)}-{rng.randint(10, 99)}"


THREADS = (
    Thread(
        "wifi",
        ("Lisbon", "Berlin", "Porto", "Madrid", "Krakow"),
        _wifi,
        (
            "does anyone know the guest wifi password in the {slot} office?",
            "what's the wifi password for guests at {slot}?",
        ),
        ("{v} — it's on the fridge too", "{v}, all lowercase"),
        (
            "what's the password for the guest wifi in {slot}?",
            "how do visitors get on the wifi at the {slot} office?",
        ),
    ),
    Thread(
        "parking",
        ("Lisbon", "Berlin", "Porto", "Madrid"),
        lambda rng: str(rng.randint(1000, 9999)),
        ("what's the code for the parking gate at {slot}?",),
        ("{v}, then press the green button", "{v}# — it changes monthly"),
        ("how do I open the car park gate in {slot}?", "what code gets me into the {slot} garage?"),
    ),
    Thread(
        "room",
        (
            "retro",
            "board prep",
            "design review",
            "sprint planning",
            "all-hands",
            "security training",
        ),
        lambda rng: rng.choice(("Tagus", "Douro", "Alfama", "Belem", "Sintra", "Mondego")),
        ("which room is the {slot} in today?", "where are we doing the {slot}?"),
        ("{v}, second floor", "{v} — the one with the whiteboard"),
        ("where is the {slot} being held?", "which meeting room did we get for the {slot}?"),
    ),
    Thread(
        "projector",
        (
            "the Friday demo",
            "the investor update",
            "the offsite",
            "the customer workshop",
            "the hackathon kickoff",
        ),
        lambda rng: rng.choice(COLLEAGUES),
        ("who's bringing the projector to {slot}?",),
        ("{v} said they'd grab it", "{v} has it"),
        ("who has the beamer for {slot}?", "who is taking the projector to {slot}?"),
    ),
    Thread(
        "dial_in",
        ORGS,
        lambda rng: (
            "meet.example/"
            + "-".join(
                "".join(rng.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(n)) for n in (3, 4, 3)
            )
        ),
        ("what's the dial-in for the {slot} call?", "link for the {slot} call, anyone?"),
        ("{v}, PIN is on the invite", "here: {v}"),
        ("how do I join the {slot} call?", "where's the meeting link for {slot}?"),
    ),
    Thread(
        "doc",
        (
            "pricing spreadsheet",
            "security questionnaire",
            "onboarding checklist",
            "architecture diagram",
            "postmortem template",
            "brand assets",
        ),
        lambda rng: rng.choice(
            ("Ops/2026", "Sales/Contracts", "Eng/Design", "Shared/Misc", "Finance/Q1")
        ),
        ("where did we put the {slot}?", "anyone know where the {slot} lives?"),
        ("in {v} on the shared drive", "{v}, top of the folder"),
        ("where can I find the {slot}?", "where is the {slot} stored?"),
    ),
    Thread(
        "approval",
        (
            "conference tickets",
            "new laptops",
            "offsite venue",
            "load-testing budget",
            "design agency invoice",
        ),
        lambda rng: rng.choice(MANAGERS),
        ("who signed off on the {slot}?",),
        ("{v} did, last Tuesday", "{v} — approval is in the thread"),
        ("who approved the {slot}?", "who gave the green light for the {slot}?"),
    ),
    Thread(
        "demo_time",
        ORGS,
        lambda rng: rng.choice(("14:30", "10:00", "16:15", "11:45", "09:30")),
        ("what time is the demo for {slot} tomorrow?",),
        ("{v} our time", "{v}, Eun-ji is presenting"),
        ("when is the {slot} demo?", "at what time do we show the product to {slot}?"),
    ),
    Thread(
        "vendor_phone",
        ("the bank", "the courier", "the office landlord", "the accounting firm"),
        lambda rng: f"+351 21 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        ("does anyone have a phone number for {slot}?",),
        ("{v} — ask for Marta", "{v}, mornings only"),
        ("how do I call {slot}?", "what's the number to ring {slot}?"),
    ),
    Thread(
        "dinner",
        ("the team dinner", "Carol's farewell", "the offsite dinner", "the launch party"),
        lambda rng: rng.choice(
            ("Cervejaria Ramiro", "O Prego", "Sala de Corte", "Taberna Sal Grosso")
        ),
        ("did anyone book a place for {slot}?",),
        ("{v}, 8pm, table for 12", "yes — {v}, booked under Sam"),
        ("where are we going for {slot}?", "which restaurant did we pick for {slot}?"),
    ),
)


# -- small talk -------------------------------------------------------------------

TASKS = (
    "the invoice export",
    "the flaky login test",
    "the PDF layout",
    "the onboarding emails",
    "the tax report",
    "dark mode",
    "the search page",
    "the CSV importer",
    "the auth middleware refactor",
    "push notifications",
    "the pricing page copy",
    "the admin dashboard",
    "the ORM upgrade",
    "the audit log",
    "currency formatting",
    "the reminder scheduler",
)
CHAT = (
    "morning all",
    "hey team",
    "good morning!",
    "thanks!",
    "sounds good",
    "on it",
    "makes sense",
    "ok, will do",
    "agreed",
    "haha",
    "nice",
    "lol fair",
    "+1",
    "brb, coffee",
    "back",
    "I'm still on {task}",
    "{task} is done, PR is up",
    "pairing with {person} on {task} this afternoon",
    "blocked on {task}, waiting for review",
    "I'll pick up {task} after lunch",
    "{task} turned out bigger than expected",
    "it's pouring in {city} today",
    "anyone watching the match tonight?",
    "the coffee machine is broken again",
    "who took my charger?",
    "bringing pastéis de nata tomorrow",
    "I'll be 10 minutes late",
    "going to grab lunch, back in 30",
    "my internet is flaky, switching to my phone",
    "happy Friday!",
    "that meeting could have been an email",
    "I'm heads down until 3, ping me if urgent",
    "can we move our 1:1 to tomorrow, {person}?",
    "great work on {task}, {person}",
    "the {org} call went well, they want a follow-up",
    "{org} asked about volume discounts again",
)
AGENT_CHAT = (
    "I've added that to the notes.",
    "I drafted a summary of today's discussion.",
    "reminder: the {task} review starts in 15 minutes.",
    "I opened a ticket for {task}.",
    "I couldn't find anything on that in earlier notes.",
    "done — the draft is in the shared folder.",
)
USER_TO_AGENT = (
    "can you summarise what we discussed about {task}?",
    "remind me tomorrow to follow up on {task}",
    "draft an email to {org} about the delay",
    "what's left on my list today?",
)
CHAT_PAIRS = (
    ("anyone up for lunch at 12:30?", "count me in"),
    ("can someone review my PR for {task}?", "I'll take it after standup"),
    ("is the VPN down for anyone else?", "works for me, try reconnecting"),
    ("who broke the build?", "me, sorry — reverting"),
    ("does anyone have a spare HDMI adapter?", "top drawer, left desk"),
    ("how did the {org} call go?", "pretty well, they want a follow-up next week"),
    ("is {task} blocked?", "not anymore, merging today"),
    ("did you see the email from {org}?", "yes, answering it now"),
)


def _fill(template: str, rng: random.Random, **known: str) -> str:
    """``template`` with known fields and random choices for the rest (``{task}``, ...)."""
    fields = set(re.findall(r"{(\w+)}", template))
    pools = {**SLOTS, "task": TASKS}
    values = {f: known[f] if f in known else rng.choice(pools[f]) for f in sorted(fields)}
    return template.format(**values)


# -- the corpus -------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """A memory that states a topic's value. ``correct`` is False for a wrong claim."""

    id: str
    topic: str
    value: str
    correct: bool
    role: str  # state, restate, change, correct, reply, note or wrong
    timestamp: datetime


@dataclass
class Question:
    id: str
    text: str
    evidence: list[str]
    kind: str  # one of QUESTION_KINDS
    since: datetime | None = None
    until: datetime | None = None
    topic: str = ""


@dataclass
class Corpus:
    seed: int
    memories: list[dict[str, Any]]  # remember_many items, minus vectors; oldest first
    edges: list[tuple[str, str, str]]  # (from, to, relation), for connect()
    questions: list[Question]
    statements: dict[str, list[Statement]]  # per topic key, oldest first


@dataclass(eq=False)
class _Turn:
    speaker: str
    text: str
    topic: str
    kind: str = "episodic"
    importance: float | None = None
    gap: int | None = None  # turns after the previous turn of its block; None: 1 to 4
    id: str = ""
    session: int = 0
    timestamp: datetime = START


@dataclass
class _Builder:
    rng: random.Random
    blocks: list[list[list[_Turn]]]  # per session, blocks of turns that stay in order
    statements: list[tuple[_Turn, str, str, bool, str]] = field(default_factory=list)
    edges: list[tuple[_Turn, _Turn, str]] = field(default_factory=list)

    def speaker(self, *exclude: str | None, user: bool = True) -> str:
        people = [p for p in COLLEAGUES if p not in exclude]
        if user and self.rng.random() < 0.15:
            return USER
        return self.rng.choice(people)

    def statement(self, turn: _Turn, topic: str, value: str, correct: bool, role: str) -> _Turn:
        self.statements.append((turn, topic, value, correct, role))
        return turn


def _session_days(rng: random.Random, sessions: int, start: datetime) -> list[datetime]:
    weekdays: list[datetime] = []
    day = start
    while len(weekdays) < max(sessions, round(sessions * WEEKDAYS_PER_SESSION)):
        if day.weekday() < 5:
            weekdays.append(day)
        day += timedelta(days=1)
    return sorted(rng.sample(weekdays, sessions))


def _topic_blocks(b: _Builder, topic: Topic, where: list[int], days: list[datetime]) -> None:
    """Plan one topic over the sessions ``where`` (its project's, oldest first): the first
    statement, restatements, changes, a wrong claim and its correction, a question in the
    chat answered later, and the assistant's notes."""
    rng = b.rng
    if not where:
        return
    first = rng.randrange(max(1, (len(where) * 2) // 5))
    later = where[first:]
    actions: list[tuple[int, int, str]] = [(where[first], 0, "state")]
    if topic.changes:
        for s in rng.sample(later, min(len(later), rng.choice((1, 1, 2)))):
            actions.append((s, len(actions), "change"))
    for s in rng.choices(later, k=rng.randint(1, 3)):
        actions.append((s, len(actions), "restate"))
    if topic.contested:
        actions.append((rng.choice(later), len(actions), "contest"))
    if rng.random() < 0.6:
        actions.append((rng.choice(later), len(actions), "qa"))
    actions.sort()

    values = list(topic.values)
    rng.shuffle(values)
    current = 0  # index into values
    last_statement: _Turn | None = None
    last_note: _Turn | None = None
    used_says: list[str] = []
    per_session: dict[int, list[_Turn]] = {}

    def says(v: str) -> str:
        fresh = [t for t in topic.says if t not in used_says[-2:]] or list(topic.says)
        template = rng.choice(fresh)
        used_says.append(template)
        return template.format(v=v)

    def note(session: int, v: str) -> _Turn:
        text = rng.choice(NOTES).format(
            fact=topic.fact.format(v=v), date=days[session].date().isoformat()
        )
        turn = _Turn(AGENT, text, topic.key, kind="semantic", importance=NOTE_IMPORTANCE, gap=0)
        b.statement(turn, topic.key, v, True, "note")
        return turn

    for session, _, action in actions:
        turns = per_session.setdefault(session, [])
        v = values[current]
        if action == "state":
            who = b.speaker(topic.subject, v)
            last_statement = b.statement(
                _Turn(who, says(v), topic.key, importance=DECISION_IMPORTANCE),
                topic.key,
                v,
                True,
                "state",
            )
            turns.append(last_statement)
            if rng.random() < 0.7:
                last_note = note(session, v)
                turns.append(last_note)
        elif action == "restate":
            who = b.speaker(topic.subject, v)
            last_statement = b.statement(
                _Turn(who, says(v), topic.key), topic.key, v, True, "restate"
            )
            turns.append(last_statement)
        elif action == "change" and current + 1 < len(values):
            old, current = v, current + 1
            v = values[current]
            template = rng.choice(topic.changes) if rng.random() < 0.7 else rng.choice(CHANGES)
            who = b.speaker(topic.subject, v, old)
            turn = _Turn(
                who, template.format(v=v, old=old), topic.key, importance=DECISION_IMPORTANCE
            )
            b.statement(turn, topic.key, v, True, "change")
            if last_statement is not None:
                b.edges.append((turn, last_statement, "updates"))
            last_statement = turn
            turns.append(turn)
            if rng.random() < 0.8:
                new_note = note(session, v)
                if last_note is not None:
                    b.edges.append((new_note, last_note, "updates"))
                last_note = new_note
                turns.append(new_note)
        elif action == "contest":
            stale = current > 0
            wrong = (
                values[current - 1] if stale else rng.choice([x for x in topic.values if x != v])
            )
            who = b.speaker(topic.subject, v, wrong)
            claim = rng.choice(WRONG_PREFIXES) + says(wrong)
            wrong_turn = b.statement(_Turn(who, claim, topic.key), topic.key, wrong, False, "wrong")
            corrector = (
                topic.subject
                if topic.subject and rng.random() < 0.5
                else b.speaker(who, topic.subject, v)
            )
            template = rng.choice(
                STALE_CORRECTIONS if stale and rng.random() < 0.6 else CORRECTIONS
            )
            fix = _Turn(
                corrector,
                template.format(v=v, wrong=wrong),
                topic.key,
                importance=DECISION_IMPORTANCE,
            )
            b.statement(fix, topic.key, v, True, "correct")
            b.edges.append((fix, wrong_turn, "updates"))
            last_statement = fix
            turns += [wrong_turn, fix]
        elif action == "qa":
            asker = b.speaker(topic.subject)
            ask = _Turn(asker, rng.choice(topic.asks), topic.key)
            reply = _Turn(
                b.speaker(asker, topic.subject, v, user=False),
                rng.choice(REPLIES).format(v=v),
                topic.key,
            )
            b.statement(reply, topic.key, v, True, "reply")
            b.edges.append((reply, ask, "reply_to"))
            last_statement = reply
            turns += [ask, reply]
    for session, turns in per_session.items():
        b.blocks[session].append(turns)


def _interleave(rng: random.Random, blocks: list[list[_Turn]], chat: list[_Turn]) -> list[_Turn]:
    """One session's turns: blocks start at random points among the small talk, and a
    block's later turns follow a few turns after the one before (``_Turn.gap``)."""
    blocks = list(blocks)
    rng.shuffle(blocks)
    out: list[_Turn] = []
    pending: list[list[Any]] = []  # [turns still to wait, remaining turns of the block]
    chat_at = 0

    def schedule(rest: list[_Turn]) -> None:
        if rest:
            gap = rest[0].gap
            pending.append([rng.randint(1, 4) if gap is None else gap, rest])

    while blocks or pending or chat_at < len(chat):
        due = next((p for p in pending if p[0] <= 0), None)
        if due is not None:
            pending.remove(due)
            out.append(due[1][0])
            schedule(due[1][1:])
        elif blocks and (
            chat_at >= len(chat) or rng.random() < len(blocks) / (len(blocks) + len(chat) - chat_at)
        ):
            block = blocks.pop()
            out.append(block[0])
            schedule(block[1:])
        elif chat_at < len(chat):
            out.append(chat[chat_at])
            chat_at += 1
        else:  # only waiting turns are left: the soonest comes next
            min(pending, key=lambda p: p[0])[0] = 0
            continue
        for p in pending:
            p[0] -= 1
    return out


def _small_talk(b: _Builder, project: str) -> list[_Turn]:
    rng = b.rng
    turns: list[_Turn] = []
    for _ in range(rng.randint(28, 42)):
        r = rng.random()
        if r < 0.08:
            turns.append(_Turn(AGENT, _fill(rng.choice(AGENT_CHAT), rng), "chat"))
        elif r < 0.14:
            turns.append(_Turn(USER, _fill(rng.choice(USER_TO_AGENT), rng), "chat"))
        else:
            turns.append(_Turn(b.speaker(), _fill(rng.choice(CHAT), rng), "chat"))
    topics = [t for t in TOPICS if t.project == project and t.near]
    for topic in rng.sample(topics, min(len(topics), rng.randint(3, 6))):
        turns.append(_Turn(b.speaker(topic.subject), rng.choice(topic.near), topic.key))
    rng.shuffle(turns)
    return turns


def _chat_pairs(b: _Builder, session: int) -> None:
    """Questions and answers that are small talk: the graph is not only evidence."""
    rng = b.rng
    for _ in range(rng.randint(1, 4)):
        ask_t, reply_t = rng.choice(CHAT_PAIRS)
        ask = _Turn(b.speaker(), _fill(ask_t, rng), "chat")
        reply = _Turn(b.speaker(ask.speaker, user=False), _fill(reply_t, rng), "chat")
        b.edges.append((reply, ask, "reply_to"))
        b.blocks[session].append([ask, reply])
    if rng.random() < 0.5:
        ask = _Turn(USER, _fill(rng.choice(USER_TO_AGENT), rng), "chat")
        reply = _Turn(AGENT, _fill(rng.choice(AGENT_CHAT), rng), "chat")
        b.edges.append((reply, ask, "reply_to"))
        b.blocks[session].append([ask, reply])


def make_corpus(seed: int = 0, sessions: int = 60, *, start: datetime = START) -> Corpus:
    """The conversation of ``sessions`` weekday sessions from ``start``, and its questions.

    The same ``seed`` and ``sessions`` always give the same corpus. At the default 60
    sessions it holds about 3,000 memories and 300 questions.
    """
    if sessions < 2:
        raise ValueError("make_corpus needs at least 2 sessions")
    rng = random.Random(seed)
    days = _session_days(rng, sessions, start)
    orion = set(rng.sample(range(sessions), max(1, sessions // 6)))
    projects = ["orion" if s in orion else "atlas" for s in range(sessions)]
    b = _Builder(rng, [[] for _ in range(sessions)])

    for topic in TOPICS:
        where = [s for s in range(sessions) if projects[s] == topic.project]
        _topic_blocks(b, topic, where, days)

    # Exact tokens: a fact turn, sometimes a follow-up (also an answer) and a bare mention.
    entity_answers: list[tuple[EntityKind, str, list[_Turn]]] = []
    used: set[str] = set()
    for i in range(max(8, round(sessions * 1.2))):
        kind = ENTITY_KINDS[i % len(ENTITY_KINDS)]
        tok = _token(rng, kind.name, used)
        used.add(tok)
        session = rng.randrange(sessions)
        fact = _Turn(b.speaker(), _fill(rng.choice(kind.facts), rng, tok=tok), kind.name)
        b.blocks[session].append([fact])
        answers = [fact]
        if rng.random() < 0.4 and session + 1 < sessions:
            follow = _Turn(b.speaker(), _fill(rng.choice(kind.followups), rng, tok=tok), kind.name)
            b.blocks[rng.randrange(session + 1, sessions)].append([follow])
            answers.append(follow)
        if rng.random() < 0.4:
            mention = _Turn(b.speaker(), _fill(rng.choice(kind.mentions), rng, tok=tok), kind.name)
            b.blocks[rng.randrange(sessions)].append([mention])
        entity_answers.append((kind, tok, answers))

    # Threads: asked in the chat, answered tersely a few turns later.
    combos = [(t, slot) for t in THREADS for slot in t.slots]
    thread_answers: list[tuple[Thread, str, _Turn]] = []
    for thread, slot in rng.sample(combos, min(len(combos), max(6, round(sessions * 0.8)))):
        session = rng.randrange(sessions)
        asker = b.speaker()
        ask = _Turn(asker, rng.choice(thread.asks).format(slot=slot), "thread")
        v = thread.values(rng)
        reply = _Turn(
            b.speaker(asker, v, user=False), rng.choice(thread.replies).format(v=v), "thread"
        )
        b.edges.append((reply, ask, "reply_to"))
        b.blocks[session].append([ask, reply])
        thread_answers.append((thread, slot, reply))

    # Sessions: interleave, then give every turn its id and time.
    turns: list[_Turn] = []
    for s in range(sessions):
        _chat_pairs(b, s)
        at = days[s] + timedelta(hours=9, minutes=rng.randrange(0, 7 * 60))
        for t, turn in enumerate(_interleave(rng, b.blocks[s], _small_talk(b, projects[s])), 1):
            at += timedelta(seconds=rng.randint(45, 150))
            turn.id, turn.session, turn.timestamp = f"s{s + 1:03d}-t{t:02d}", s, at
            turns.append(turn)

    statements: dict[str, list[Statement]] = {}
    for turn, topic_key, value, correct, role in b.statements:
        statements.setdefault(topic_key, []).append(
            Statement(turn.id, topic_key, value, correct, role, turn.timestamp)
        )
    for items in statements.values():
        items.sort(key=lambda st: (st.timestamp, st.id))

    questions = _questions(rng, statements, entity_answers, thread_answers, sessions)
    memories = [
        {
            "id": turn.id,
            "text": turn.text if turn.kind == "semantic" else f"{turn.speaker}: {turn.text}",
            "timestamp": turn.timestamp,
            "metadata": {
                "speaker": turn.speaker,
                "role": "user"
                if turn.speaker == USER
                else "agent"
                if turn.speaker == AGENT
                else "colleague",
                "session": f"s{turn.session + 1:03d}",
                "topic": turn.topic,
            },
            "kind": turn.kind,
            "importance": turn.importance,
            "namespace": projects[turn.session],
        }
        for turn in turns
    ]
    edges = [(a.id, c.id, rel) for a, c, rel in b.edges]
    return Corpus(seed, memories, edges, questions, statements)


def _questions(
    rng: random.Random,
    statements: dict[str, list[Statement]],
    entities: list[tuple[EntityKind, str, list[_Turn]]],
    threads: list[tuple[Thread, str, _Turn]],
    sessions: int,
) -> list[Question]:
    out: list[Question] = []

    def ask(
        text: str, evidence: Sequence[str], kind: str, topic: str = "", **window: datetime
    ) -> None:
        text = text[0].upper() + text[1:]
        out.append(
            Question(f"q{len(out) + 1:03d}", text, list(evidence), kind, topic=topic, **window)
        )

    by_key = {t.key: t for t in TOPICS}
    for key, items in statements.items():
        topic = by_key[key]
        correct = [st for st in items if st.correct]
        final = correct[-1].value
        # The current value holds from its last change (or first statement) on.
        since_change = [st for st in correct if st.role == "change" and st.value == final] or [
            correct[0]
        ]
        fresh = [
            st.id
            for st in correct
            if st.value == final and st.timestamp >= since_change[-1].timestamp
        ]
        changed = any(st.role in ("change", "wrong") for st in items)
        if changed:  # two in other words, one in the team's own
            for q in topic.questions[:2]:
                ask(rng.choice(CURRENT_WRAPPERS).format(q=q), fresh, "current", key)
            ask(rng.choice(CURRENT_PLAIN).format(name=topic.name), fresh, "current", key)
        else:
            for q in topic.questions:
                ask(q + "?", fresh, "paraphrase", key)

    for kind, tok, answers in entities:
        ask(rng.choice(kind.questions).format(tok=tok), [t.id for t in answers], "exact", kind.name)

    for thread, slot, reply in threads:
        ask(rng.choice(thread.questions).format(slot=slot), [reply.id], "linked", thread.key)

    # Temporal: what was said about a topic in one calendar week.
    weeks: list[tuple[str, datetime]] = []
    for key in sorted(statements):
        mondays = {
            (st.timestamp - timedelta(days=st.timestamp.weekday())).replace(
                hour=0, minute=0, second=0, microsecond=0
            )
            for st in statements[key]
            if st.correct
        }
        weeks += [(key, monday) for monday in sorted(mondays)]
    for key, monday in rng.sample(weeks, min(len(weeks), max(4, sessions))):
        until = monday + timedelta(days=7) - timedelta(microseconds=1)
        evidence = [
            st.id for st in statements[key] if st.correct and monday <= st.timestamp <= until
        ]
        week = f"{monday.day} {MONTHS[monday.month - 1]}"  # not %B: that follows the locale
        topic = by_key[key]
        about = topic.about if rng.random() < 0.5 else "the " + topic.name
        text = rng.choice(TEMPORAL_TEMPLATES).format(week=week, about=about)
        ask(text, evidence, "temporal", key, since=monday, until=until)
    return out


# -- lexical overlap, to check that questions are not copies of their evidence -----

_STOPWORDS = """a about after again all am an and any anyone are as at be been before being but by
    can could did do does doing don for from get go going got had has have he her here him
    his how i if in into is it its just know let me my no not now of off on one or our out
    over please same she so some still than that the their them then there these they this
    those through to too up us was we were what when where which who whom whose why will
    with would you your ll re ve s t d m"""
STOPWORDS = frozenset(_STOPWORDS.split())


def content_words(text: str) -> set[str]:
    """Lower-case words minus stop words, crudely stemmed (a trailing "s" dropped), without
    the speaker prefix ("Bob: ") or the note's label and date, which would only dilute the
    overlap and flatter the questions."""
    text = re.sub(r"^(?:[\w-]+|Noted [\d-]+): ", "", text)
    text = re.sub(r" \((?:decided|as of) [\d-]+\)$", "", text)
    words = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS:
            continue
        words.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return words


def overlap(question: str, evidence_texts: Sequence[str]) -> float:
    """The highest Jaccard similarity of content words between the question and any one
    piece of its evidence: 0 shares nothing, 1 is a copy."""
    q = content_words(question)
    best = 0.0
    for text in evidence_texts:
        e = content_words(text)
        if q | e:
            best = max(best, len(q & e) / len(q | e))
    return best
