"""Who may open what: every URL the project serves x every role, from one table (NetBox-style generated tests).

ROUTES lists every named URL of the root resolver. test_every_url_is_in_the_table fails when a URL exists that the
table does not list, so a new view cannot ship without saying who may open it.

For each route and identity (anonymous, logged in without a role, each role) the request is the route's first method:
GET where the view reads, POST (with no data) where it only accepts POST. The owner of the world's objects in an
allowed role gets the route's normal answer; other roles get 403; anonymous users go to the login page (API: 401).
Owned objects (essays, tutor sessions, watchlists, reports, stories, ...) opened by a user holding the right role
but not owning them are a 404, for GET and POST.
"""

from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from core.roles import Role
from tests.security.conftest import ANON, IDENTITIES, NOROLE

A, S, T, W, OP = (r.value for r in (Role.ANALYST, Role.STUDENT, Role.TEACHER, Role.WRITER, Role.OPERATOR))
LOGGED_IN = [NOROLE, A, S, T, W, OP]

# Namespaces and names deliberately not in the table, and why.
EXCLUDED_NAMESPACES = {
    "admin": "Django's admin guards itself (is_staff); test_admin_needs_staff checks its door for every identity.",
}


@dataclass(frozen=True)
class Route:
    """One named URL: how to build it, which methods it takes and what each allowed identity gets.

    kwargs: url kwarg -> key of World.pk or World.extra. ok: identity -> status for the route's first method
    (everyone else: 403, anonymous: login redirect or 401). owned: another user's object is a 404.
    """

    name: str
    kwargs: dict = field(default_factory=dict)
    methods: str = "GET"  # "GET", "POST" or "GET POST"
    ok: dict = field(default_factory=dict)
    api: bool = False
    public: bool = False  # no login needed; `ok` then holds every identity
    owned: bool = False

    @property
    def method(self) -> str:
        return self.methods.split()[0]


def _ok(roles, status) -> dict:
    return dict(roles) if isinstance(roles, dict) else {role: status for role in roles}


def page(name, roles, status=200, **kw):
    return Route(name, ok=_ok(roles, status), **kw)


def api(name, roles, status=200, **kw):
    return Route(name, ok=_ok(roles, status), api=True, **kw)


def public(name, status, **kw):
    ok = status if isinstance(status, dict) else {i: status for i in IDENTITIES}
    return Route(name, ok=ok, public=True, **kw)


P, GP = "POST", "GET POST"
ST = [S, T]
ROUTES = [
    # core
    page("home", LOGGED_IN),
    public("healthz", 200),
    public("login", {ANON: 200, **{i: 302 for i in LOGGED_IN}}, methods=GP),  # a logged-in user goes home
    public("logout", 302, methods=P),  # Django 5: POST only
    public("api-schema", 200),  # the API's description, not its data
    public("api-docs", 200),
    public("api-token", 400, methods=P),  # no credentials posted: 400; see test_api_tokens for the real exchange
    api("api-me", LOGGED_IN),
    # finance: analysts; watchlists, reports, schedules, imports, price uploads, re-detect runs are the analyst's own
    page("finance:index", [A]),
    page("finance:dashboard", [A]),
    page("finance:ticker", [A], kwargs={"symbol": "symbol"}),
    page("finance:sector", [A], kwargs={"sector": "sector"}),
    page("finance:upload", [A], methods=GP),
    page("finance:upload_confirm", [A], 400, methods=P),  # no pending upload of this session
    page("finance:feeds", [A], methods=GP),
    page("finance:feed_poll", [A], 302, kwargs={"source_id": "source"}, methods=P),  # sources are shared
    page("finance:watchlists", [A], methods=GP),
    page("finance:watchlist", [A], kwargs={"watchlist_id": "watchlist"}, methods=GP, owned=True),
    page("finance:watchlist_delete", [A], 302, kwargs={"watchlist_id": "watchlist"}, methods=P, owned=True),
    page("finance:reports", [A], methods=GP),
    page("finance:report", [A], kwargs={"report_id": "report"}, owned=True),
    page("finance:report_schedule_delete", [A], 302, kwargs={"schedule_id": "schedule"}, methods=P, owned=True),
    page("finance:ingest_run", [A], kwargs={"run_id": "run"}, owned=True),
    page("finance:ingest_run_problems_csv", [A], kwargs={"run_id": "run"}, owned=True),
    page("finance:companies", [A]),  # companies and articles are the analysts' shared reference data
    page("finance:company_add", [A], methods=GP),
    page("finance:company_edit", [A], kwargs={"company_id": "company"}, methods=GP),
    page("finance:company_redetect", [A], 302, kwargs={"company_id": "company"}, methods=P),
    page("finance:redetect_run", [A], kwargs={"run_id": "redetect_run"}, owned=True),
    page("finance:article", [A], kwargs={"article_id": "article"}, methods=GP),
    page("finance:prices", [A], methods=GP),
    page("finance:price_upload", [A], kwargs={"upload_id": "price_upload"}, owned=True),
    page("finance:price_upload_rejected_csv", [A], kwargs={"upload_id": "price_upload"}, owned=True),
    api("finance-articles-push", [A], 400, methods=P),  # nothing posted
    api("ingest-run-list", [A]),
    api("ingest-run-detail", [A], kwargs={"pk": "run"}, owned=True),
    # education: the course's teacher and its enrolled students; essays and tutor sessions are the student's own
    page("education:index", ST),
    page("education:course", ST, kwargs={"course_id": "course"}, owned=True),
    page("education:assignment_new", [T], kwargs={"course_id": "course"}, methods=GP, owned=True),
    page("education:assignment", {S: 200, T: 302}, kwargs={"assignment_id": "assignment"}, methods=GP,
         owned=True),  # the teacher is sent to the grading page
    page("education:assignment_edit", [T], kwargs={"assignment_id": "assignment"}, methods=GP, owned=True),
    page("education:grading", [T], kwargs={"assignment_id": "assignment"}, owned=True),
    page("education:calibrate", [T], 302, kwargs={"assignment_id": "assignment"}, methods=P, owned=True),
    page("education:grade_override", [T], 302, kwargs={"grade_id": "grade"}, methods=P, owned=True),
    page("education:essay", ST, kwargs={"essay_id": "essay"}, owned=True),  # the student and the course's teacher
    page("education:tutor_home", ST),
    page("education:tutor_course", ST, kwargs={"course_id": "course"}, owned=True),
    page("education:tutor_course_ask", ST, 400, kwargs={"course_id": "course"}, methods=P, owned=True),
    page("education:tutor_material_list", [T], kwargs={"course_id": "course"}, methods=GP, owned=True),
    page("education:tutor_course_sessions", [T], kwargs={"course_id": "course"}, owned=True),
    page("education:tutor_material_detail", ST, kwargs={"material_id": "material"}, owned=True),
    page("education:tutor_material_state", [T], kwargs={"material_id": "material"}, owned=True),
    page("education:tutor_material_retry", [T], 302, kwargs={"material_id": "material"}, methods=P, owned=True),
    page("education:tutor_material_delete", [T], 302, kwargs={"material_id": "material"}, methods=P, owned=True),
    page("education:tutor_session", ST, kwargs={"session_id": "session"}, owned=True),  # the teacher reads it
    page("education:tutor_session_ask", {S: 400, T: 404}, kwargs={"session_id": "session"}, methods=P,
         owned=True),  # only the student who owns the session asks in it
    page("education:tutor_message_reveal", {S: 302, T: 404}, kwargs={"message_id": "message"}, methods=P,
         owned=True),
    page("education:tutor_message_explain", {S: 302, T: 404}, kwargs={"message_id": "message"},
         owned=True),  # the student's page polls it (JSON); a browser without the script goes back to the answer
    page("education:tutor_message_flag", {S: 302, T: 404}, kwargs={"message_id": "message"}, methods=P,
         owned=True),
    # entertainment: writers; every world and what is in it is the writer's own
    page("entertainment:index", [W], methods=GP),
    page("entertainment:project", [W], kwargs={"pk": "project"}, owned=True),
    page("entertainment:blocklist", [W], 302, kwargs={"pk": "project"}, methods=P, owned=True),
    page("entertainment:style_upload", [W], 400, kwargs={"pk": "project"}, methods=P, owned=True),
    page("entertainment:style_use", [W], 302, kwargs={"pk": "project"}, methods=P, owned=True),
    page("entertainment:style_status", [W], kwargs={"pk": "project"}, owned=True),
    page("entertainment:lore_new", [W], kwargs={"pk": "project"}, methods=GP, owned=True),
    page("entertainment:character_new", [W], kwargs={"pk": "project"}, methods=GP, owned=True),
    page("entertainment:story_new", [W], 400, kwargs={"pk": "project"}, methods=P, owned=True),
    page("entertainment:tree_new", [W], 400, kwargs={"pk": "project"}, methods=P, owned=True),
    page("entertainment:lore_edit", [W], kwargs={"pk": "lore"}, methods=GP, owned=True),
    page("entertainment:lore_delete", [W], 302, kwargs={"pk": "lore"}, methods=P, owned=True),
    page("entertainment:character_edit", [W], kwargs={"pk": "character"}, methods=GP, owned=True),
    page("entertainment:character_delete", [W], 400, kwargs={"pk": "character"}, methods=P,
         owned=True),  # refused: the character speaks a line of the world's tree
    page("entertainment:story", [W], kwargs={"pk": "story"}, methods=GP, owned=True),
    page("entertainment:story_generate", [W], 400, kwargs={"pk": "story"}, methods=P, owned=True),
    page("entertainment:story_append", [W], 400, kwargs={"pk": "story"}, methods=P, owned=True),
    page("entertainment:story_undo", [W], 302, kwargs={"pk": "story"}, methods=P, owned=True),
    page("entertainment:story_export_md", [W], kwargs={"pk": "story"}, owned=True),
    page("entertainment:story_export_txt", [W], kwargs={"pk": "story"}, owned=True),
    page("entertainment:segment_swipe", [W], 302, kwargs={"pk": "segment"}, methods=P, owned=True),
    page("entertainment:segment_edit", [W], 400, kwargs={"pk": "segment"}, methods=P, owned=True),
    page("entertainment:job_status", [W], kwargs={"pk": "story_job"}, owned=True),
    page("entertainment:job_cancel", [W], 302, kwargs={"pk": "story_job"}, methods=P, owned=True),
    page("entertainment:candidate_accept", [W], 400, kwargs={"pk": "story_job"}, methods=P, owned=True),
    page("entertainment:tree", [W], kwargs={"pk": "tree"}, owned=True),
    page("entertainment:tree_generate", [W], 400, kwargs={"pk": "tree"}, methods=P, owned=True),
    page("entertainment:node_add", [W], 400, kwargs={"pk": "tree"}, methods=P, owned=True),
    page("entertainment:choice_add", [W], 400, kwargs={"pk": "tree"}, methods=P, owned=True),
    page("entertainment:tree_export_json", [W], kwargs={"pk": "tree"}, owned=True),
    page("entertainment:tree_export_ink", [W], kwargs={"pk": "tree"}, owned=True),
    page("entertainment:tree_export_yarn", [W], kwargs={"pk": "tree"}, owned=True),
    page("entertainment:node_edit", [W], 400, kwargs={"pk": "node"}, methods=P, owned=True),
    page("entertainment:node_delete", [W], 302, kwargs={"pk": "node"}, methods=P, owned=True),
    page("entertainment:choice_delete", [W], 302, kwargs={"pk": "choice"}, methods=P, owned=True),
    api("stories-api-projects", [W]),
    api("stories-api-project-stories", [W], kwargs={"pk": "project"}, methods=GP, owned=True),
    api("stories-api-story", [W], kwargs={"pk": "story"}, owned=True),
    api("stories-api-story-generate", [W], 400, kwargs={"pk": "story"}, methods=P, owned=True),
    api("stories-api-tree-generate", [W], 400, kwargs={"pk": "tree"}, methods=P, owned=True),
    api("stories-api-tree-export", [W], kwargs={"pk": "tree", "fmt": "fmt"}, owned=True),
    api("stories-api-job", [W], kwargs={"pk": "story_job"}, owned=True),
    api("stories-api-job-accept", [W], 400, kwargs={"pk": "story_job"}, methods=P, owned=True),  # nothing posted
    api("stories-api-job-cancel", [W], 409, kwargs={"pk": "story_job"}, methods=P, owned=True),  # already done
    # mlcore: operators. The registry, datasets and training jobs are the operators' shared workspace (one active
    # model per task serves everybody), so another operator's job or dataset is visible by design: not `owned`.
    page("mlcore:index", [OP]),
    page("mlcore:task", [OP], kwargs={"task": "task"}),
    page("mlcore:version_activate", [OP], 302, kwargs={"version_id": "version"}, methods=P),
    page("mlcore:version_archive", [OP], 302, kwargs={"version_id": "version"}, methods=P),
    page("mlcore:datasets", [OP], methods=GP),
    page("mlcore:dataset", [OP], kwargs={"dataset_id": "dataset"}),
    page("mlcore:dataset_rejected_csv", [OP], kwargs={"dataset_id": "dataset"}),
    page("mlcore:jobs", [OP]),
    page("mlcore:job_new", [OP], methods=GP),
    page("mlcore:job", [OP], kwargs={"job_id": "training_job"}),
    page("mlcore:job_status", [OP], kwargs={"job_id": "training_job"}),
    page("mlcore:job_cancel", [OP], 302, kwargs={"job_id": "training_job"}, methods=P),
    api("model-version-list", [OP]),
    api("model-version-detail", [OP], kwargs={"pk": "version"}),
    api("model-version-activate", [OP], kwargs={"pk": "version"}, methods=P),
    api("dataset-list", [OP]),
    api("dataset-detail", [OP], kwargs={"pk": "dataset"}),
    api("training-job-list", [OP], methods=GP),
    api("training-job-detail", [OP], kwargs={"pk": "training_job"}),
    api("training-job-cancel", [OP], kwargs={"pk": "training_job"}, methods=P),
]
BY_NAME = {route.name: route for route in ROUTES}


def url_names() -> dict[str, str]:
    """Every named URL of the root resolver (name -> pattern), namespaces joined with ':'."""
    found = {}

    def walk(patterns, namespace, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                ns = ":".join(filter(None, [namespace, entry.namespace]))
                if ns in EXCLUDED_NAMESPACES:
                    continue
                walk(entry.url_patterns, ns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                assert entry.name, f"{prefix}{entry.pattern} has no name: name it and add it to ROUTES"
                found[":".join(filter(None, [namespace, entry.name]))] = prefix + str(entry.pattern)

    walk(get_resolver().url_patterns, "", "/")
    return found


def build_url(route: Route, world) -> str:
    values = {**world.pk, **world.extra, "fmt": "json"}
    return reverse(route.name, kwargs={k: values[v] for k, v in route.kwargs.items()})


def request(client, route: Route, url: str, method: str | None = None):
    method = method or route.method
    return client.post(url) if method == "POST" else client.get(url)


def expected_status(route: Route, identity: str):
    if identity in route.ok:
        return route.ok[identity]
    if identity == ANON:
        return 401 if route.api else "login"
    return 403


def test_every_url_is_in_the_table():
    names = set(url_names())
    missing = sorted(names - set(BY_NAME))
    stale = sorted(set(BY_NAME) - names)
    assert not missing, f"URLs missing from tests/security/test_access.py ROUTES (say who may open them): {missing}"
    assert not stale, f"ROUTES lists URLs that no longer exist: {stale}"


@pytest.mark.parametrize("identity", IDENTITIES)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_role_access(client, world, route, identity):
    user = world.users[identity]
    if user is not None:
        client.force_login(user)
    url = build_url(route, world)
    response = request(client, route, url)
    want = expected_status(route, identity)
    if want == "login":
        assert response.status_code == 302, f"{route.method} {url} as {identity}: {response.status_code}"
        assert response["Location"].startswith(reverse("login") + "?next="), response["Location"]
    else:
        assert response.status_code == want, (
            f"{route.method} {url} as {identity}: {response.status_code}, expected {want}")


OWNED = [route for route in ROUTES if route.owned]


def _stranger_cases():
    for route in OWNED:
        for role in route.ok:
            for method in route.methods.split():
                yield pytest.param(route, role, method, id=f"{route.name}-{role}-{method}")


@pytest.mark.parametrize(("route", "role", "method"), list(_stranger_cases()))
def test_another_users_object_is_404(client, world, route, role, method):
    """A user holding the role that opens the route, owning nothing and enrolled nowhere, gets a 404."""
    client.force_login(world.strangers[role])
    url = build_url(route, world)
    response = request(client, route, url, method)
    assert response.status_code == 404, f"{method} {url} as another {role}: {response.status_code}"


@pytest.mark.parametrize("identity", IDENTITIES)
def test_admin_needs_staff(client, world, identity):
    if world.users[identity] is not None:
        client.force_login(world.users[identity])
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


GET_AND_POST = [route for route in ROUTES if route.methods == "GET POST" and not route.public]


@pytest.mark.parametrize("route", GET_AND_POST, ids=lambda r: r.name)
def test_post_needs_the_role_too(client, world, route):
    """test_role_access GETs these; a POST by a role that may not open the page is refused the same way."""
    url = build_url(route, world)
    denied = next(i for i in LOGGED_IN if i not in route.ok)
    anonymous = client.post(url)
    assert anonymous.status_code == 401 if route.api else anonymous["Location"].startswith(reverse("login")), (
        f"POST {url} as anonymous: {anonymous.status_code}")
    client.force_login(world.users[denied])
    assert client.post(url).status_code == 403, f"POST {url} as {denied}"
