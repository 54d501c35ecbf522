"""The dashboard in a real browser (Debian's Chromium, headless) against a real service.

Each check compares what the page shows with what the REST API says (the reference), or with
a result worked out here from the API's data (which layers of two designs differ).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from search_space.design import FFNDesign
from search_space.export import import_design
from tests.dashboard.conftest import Service
from tests.dashboard.conftest import job_spec

pytestmark = pytest.mark.slow  # one service + browser for the whole module

# The points Plotly draws as the front, read back from the figure itself.
READ_FRONT = """() => {
  const gd = document.getElementById('front-plot');
  const trace = gd.data.find((t) => t.name.startsWith('Pareto front'));
  return trace.customdata.map((n, i) => [n, trace.x[i], trace.y[i]]);
}"""

# Page coordinates of every clickable point on the front plot: [[x, y, trial number], ...],
# from the axes' own data-to-pixel mapping.
POINTS_XY = """() => {
  const gd = document.getElementById('front-plot');
  const xa = gd._fullLayout.xaxis;
  const ya = gd._fullLayout.yaxis;
  const box = gd.getBoundingClientRect();
  const out = [];
  for (const trace of gd.data) {
    if (trace.hoverinfo === 'skip' || !trace.customdata) continue;
    trace.customdata.forEach((n, i) => out.push([
      box.left + xa._offset + xa.d2p(trace.x[i]), box.top + ya._offset + ya.d2p(trace.y[i]), n]));
  }
  return out;
}"""


def isolated(points: list[list[float]], exclude: int, gap: float = 30.0) -> list[list[float]]:
    """Points with no other point within `gap` px (Plotly's click picks the nearest one)."""
    return [
        p
        for p in points
        if p[2] != exclude
        and all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 > gap**2 for q in points if q is not p)
    ]


def open_job(page: Any, service: Service, job_id: str) -> None:
    page.goto(f"{service.base_url}/?token={service.token}#/jobs/{job_id}")
    page.wait_for_function(
        "() => document.querySelector('#front-plot')?.dataset.frontNumbers !== undefined"
        " && Number(document.getElementById('main').dataset.trialCount) > 0"
    )


def api_get(service: Service, path: str) -> Any:
    with service.api() as client:
        response = client.get(path)
        assert response.status_code == 200, response.text
        return response.json()


def test_token_link_signs_in_and_is_stripped(
    page: Any, service: Service, finished_job: dict[str, Any]
) -> None:
    page.goto(f"{service.base_url}/")
    page.evaluate("localStorage.clear()")
    page.goto(f"{service.base_url}/?token={service.token}")
    page.wait_for_selector("#jobs-table")
    assert "token" not in page.url
    assert page.evaluate("localStorage.getItem('ffnas.token')") == service.token
    row = page.locator(f"#jobs-table tr[data-job-id='{finished_job['id']}']")
    assert row.get_attribute("data-status") == "completed"
    assert "24 done · 0 running · 0 failed · 0 pruned of 24" in row.inner_text()
    assert row.locator("button[data-action=stop]").count() == 0


def test_front_shows_exactly_the_api_front(
    page: Any, service: Service, finished_job: dict[str, Any], artifacts: Path
) -> None:
    job_id = finished_job["id"]
    open_job(page, service, job_id)
    pareto = api_get(service, f"/jobs/{job_id}/pareto")
    expected = sorted(
        (p["number"], p["values"]["params"], p["values"]["flops"]) for p in pareto["points"]
    )
    assert len(expected) >= 2, "the finished job's front should be a trade-off"
    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('#front-plot').dataset.frontNumbers)"
        f".length === {len(expected)}"
    )
    drawn = sorted(tuple(p) for p in page.evaluate(READ_FRONT))
    assert drawn == [tuple(e) for e in expected]
    # Every complete trial is drawn once (front, dominated or infeasible).
    trials = api_get(service, f"/jobs/{job_id}/trials")["data"]
    complete = sum(t["state"] == "complete" for t in trials)
    assert page.get_attribute("#front-plot", "data-point-count") == str(complete)
    # The budget (params <= 2.5M) is drawn on the params axis.
    assert "budget 2.50M" in page.inner_text("#front-plot")
    # hypervolume history: one point per API entry
    hv = len(pareto["hypervolume"])
    assert page.get_attribute("#history-plot", "data-hypervolume-points") == str(hv)
    page.screenshot(path=str(artifacts / "job-page.png"), full_page=True)


def test_clicking_a_point_opens_its_layer_view(
    page: Any, service: Service, finished_job: dict[str, Any], artifacts: Path
) -> None:
    job_id = finished_job["id"]
    open_job(page, service, job_id)
    page.wait_for_function(
        "() => JSON.parse(document.querySelector('#front-plot').dataset.frontNumbers).length"
    )
    # The page preselects the front's best design; click a point that is not selected yet.
    page.wait_for_selector("#layer-view[data-trial]")
    shown = int(page.get_attribute("#layer-view", "data-trial"))
    points = page.evaluate(POINTS_XY)
    candidates = isolated(points, exclude=shown)
    assert candidates, f"no point stands apart from the others: {points}"
    x, y, number = candidates[0]
    page.mouse.click(x, y)
    page.wait_for_selector(f"#layer-view[data-trial='{number}']")
    trial = api_get(service, f"/jobs/{job_id}/trials/{number}")
    design = FFNDesign.model_validate(trial["design"])
    rows = page.locator("#layer-view table.layers tbody tr")
    assert rows.count() == design.dims.n_layers
    for i, layer in enumerate(design.layers):
        assert rows.nth(i).get_attribute("data-kind") == layer.kind
    page.locator("#layer-view").screenshot(path=str(artifacts / "layer-view.png"))
    # Keyboard: a focused table row opens on Enter.
    other = next(p[2] for p in points if p[2] != number)
    page.focus(f"#trial-table tr[data-number='{other}']")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#layer-view[data-trial='{other}']")


def test_comparing_two_designs_marks_the_differing_layers(
    page: Any, service: Service, finished_job: dict[str, Any], artifacts: Path
) -> None:
    job_id = finished_job["id"]
    open_job(page, service, job_id)
    trials = {t["number"]: t for t in api_get(service, f"/jobs/{job_id}/trials")["data"]}
    # A pair with both equal and differing layers, found by brute force over the API's data.
    designs = {n: FFNDesign.model_validate(t["design"]) for n, t in trials.items()}
    n_layers = next(iter(designs.values())).dims.n_layers

    def n_diff(p: int, q: int) -> int:
        return sum(x != y for x, y in zip(designs[p].layers, designs[q].layers, strict=True))

    numbers = sorted(designs)
    pairs = [(p, q) for p in numbers for q in numbers if p < q]
    a, b = next(((p, q) for p, q in pairs if 0 < n_diff(p, q) < n_layers), pairs[0])
    page.locator(f"#trial-table tr[data-number='{a}'] td.num").first.click()
    page.wait_for_selector(f"#layer-view[data-trial='{a}']")
    page.locator(f"#trial-table tr[data-number='{b}'] input[type=checkbox]").check()
    page.wait_for_selector("#compare-view:not([hidden]) table.compare")
    layers_a = trials[a]["design"]["layers"]
    layers_b = trials[b]["design"]["layers"]
    # Normalise through the design type, so defaults left out of the JSON compare equal.
    norm_a = FFNDesign.model_validate(trials[a]["design"]).layers
    norm_b = FFNDesign.model_validate(trials[b]["design"]).layers
    expected = [i for i in range(len(layers_a)) if norm_a[i] != norm_b[i]]
    assert len(layers_a) == len(layers_b)
    marked = page.locator("#compare-view tr[data-differs='1']")
    shown = [int(marked.nth(i).get_attribute("data-layer")) for i in range(marked.count())]
    assert shown == expected
    assert json.loads(page.get_attribute("#compare-view", "data-differing")) == expected
    assert f"{len(expected)} of {len(layers_a)} layers differ" in page.inner_text("#compare-view")
    page.locator(".area-layers").screenshot(path=str(artifacts / "compare-view.png"))


def test_export_downloads_files_the_importer_accepts(
    page: Any, service: Service, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    job_id = finished_job["id"]
    number = api_get(service, f"/jobs/{job_id}/pareto")["points"][0]["number"]
    design = FFNDesign.model_validate(
        api_get(service, f"/jobs/{job_id}/trials/{number}")["design"]
    )
    open_job(page, service, job_id)
    page.locator(f"#trial-table tr[data-number='{number}']").click()
    for fmt in ("native", "decilm", "puzzletron"):
        page.click(f"#layer-view button[data-export={fmt}]")
        page.wait_for_selector(f"#export-dialog[open][data-format={fmt}]")
        reference = api_get(service, f"/jobs/{job_id}/trials/{number}/export?format={fmt}")
        # the lossy-mapping report is shown before the download
        assert page.get_attribute("#export-dialog", "data-lossy") == str(len(reference["lossy"]))
        for item in reference["lossy"]:
            assert str(item["reason"]) in page.inner_text("#export-dialog table.lossy")
        with page.expect_download() as info:
            page.click("#export-download")
        download = info.value
        assert download.suggested_filename == reference["filename"]
        path = tmp_path / f"{fmt}-{download.suggested_filename}"
        download.save_as(str(path))
        text = path.read_text()
        assert text == reference["content"]
        imported = import_design(text, fmt, dims=design.dims)
        assert imported.dims.n_layers == design.dims.n_layers
        if fmt == "native":
            assert imported == design
        page.wait_for_selector("#export-dialog:not([open])", state="attached")


def test_submitting_the_form_adds_the_job(
    page: Any, service: Service, finished_job: dict[str, Any]
) -> None:
    page.goto(f"{service.base_url}/?token={service.token}#/jobs")
    page.wait_for_selector("#jobs-table")
    spec = job_spec("ignored", n_trials=5)
    for key in ("name", "n_trials", "target", "evaluator", "strategy"):
        spec.pop(key)
    page.fill("#job-spec", json.dumps(spec))
    page.fill("#job-name", "submitted from the form")
    page.fill("#job-n_trials", "3")
    page.click("#job-submit")
    page.wait_for_selector("#jobs-table th:has-text('submitted from the form')")
    listed = api_get(service, "/jobs")["data"]
    made = [j for j in listed if j["name"] == "submitted from the form"]
    assert len(made) == 1 and made[0]["n_trials"] == 3


def test_a_bad_field_shows_the_server_message(
    page: Any, service: Service, finished_job: dict[str, Any]
) -> None:
    page.goto(f"{service.base_url}/?token={service.token}#/jobs")
    page.wait_for_selector("#job-form")
    page.fill("#job-n_trials", "1000000000")
    page.click("#job-submit")
    message = page.locator("#job-n_trials-error")
    message.wait_for(state="visible")
    # The reference: the same request straight to the API.
    spec = json.loads(page.input_value("#job-spec"))
    spec.update(name="my search", n_trials=1_000_000_000, target="cpu")
    with service.api() as client:
        response = client.post("/jobs", json=spec)
    assert response.status_code == 422
    expected = [d["msg"] for d in response.json()["detail"] if d["loc"][-1] == "n_trials"]
    assert expected and message.inner_text().strip() == expected[0]
    assert page.get_attribute("#job-n_trials", "aria-invalid") == "true"
    assert not [j for j in api_get(service, "/jobs")["data"] if j["n_trials"] == 1_000_000_000]


def test_a_narrow_window_still_shows_the_front(
    page: Any, service: Service, finished_job: dict[str, Any], artifacts: Path
) -> None:
    page.set_viewport_size({"width": 420, "height": 860})
    open_job(page, service, finished_job["id"])
    box = page.locator("#front-plot").bounding_box()
    assert box is not None and box["width"] <= 420
    # no horizontal scrolling of the page itself (wide tables scroll inside their box)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    page.screenshot(path=str(artifacts / "job-page-narrow.png"), full_page=True)


def test_new_trial_results_appear_without_reload(
    page: Any, service: Service, running_job: str
) -> None:
    open_job(page, service, running_job)
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector("#live-status:text('live')")
    before = int(page.get_attribute("#front-plot", "data-point-count"))
    page.wait_for_function(
        f"() => Number(document.querySelector('#front-plot').dataset.pointCount) >= {before + 2}",
        timeout=20_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    # The drawn front equals the API's front: the job keeps moving, so retry until a read of
    # both agrees (the page trails the database by one poll plus the 300 ms debounce).
    deadline = time.monotonic() + 15
    seen: list[tuple[list[int], list[int]]] = []
    while time.monotonic() < deadline:
        api_front = sorted(
            p["number"] for p in api_get(service, f"/jobs/{running_job}/pareto")["points"]
        )
        drawn = json.loads(page.get_attribute("#front-plot", "data-front-numbers"))
        seen.append((drawn, api_front))
        if drawn == api_front:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"the drawn front never matched the API's: {seen[-3:]}")


def test_jobs_page_progress_moves_without_polling(
    page: Any, service: Service, running_job: str
) -> None:
    jobs_reads: list[str] = []
    page.on(
        "request",
        lambda r: (
            jobs_reads.append(r.url)
            if r.method == "GET" and urlsplit(r.url).path == "/api/v1/jobs"
            else None
        ),
    )
    page.goto(f"{service.base_url}/?token={service.token}#/jobs")
    page.evaluate("window.__sameDocument = true")
    text = page.locator(f"#jobs-table tr[data-job-id='{running_job}'] .progress-text")
    text.wait_for()
    page.wait_for_selector("#jobs-live-status:text('live')")
    before = int(text.inner_text().split(" done")[0])
    # Trials finish every ~0.25 s here (two slots, 0.5 s each): three more took ~1.1 s. The
    # row can change only through the stream or another GET /jobs, which is counted below.
    page.wait_for_function(
        f"""() => parseInt(document.querySelector(
            "#jobs-table tr[data-job-id='{running_job}'] .progress-text")?.textContent)
            >= {before + 3}""",
        timeout=10_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    assert len(jobs_reads) == 1, jobs_reads  # the first fill only: the rest came pushed


def test_jobs_page_stops_the_running_job(page: Any, service: Service, running_job: str) -> None:
    page.goto(f"{service.base_url}/?token={service.token}#/jobs")
    row = page.locator(f"#jobs-table tr[data-job-id='{running_job}']")
    row.wait_for()
    assert row.get_attribute("data-status") == "running"
    text = row.locator(".progress-text").inner_text()
    assert text.endswith("of 300") and "running" in text
    row.locator("button[data-action=stop]").click()
    page.wait_for_selector(
        f"#jobs-table tr[data-job-id='{running_job}'][data-status='stopped'], "
        f"#jobs-table tr[data-job-id='{running_job}'][data-status='stopping']"
    )
    status = api_get(service, f"/jobs/{running_job}")["status"]
    assert status in ("stopping", "stopped")


# Chunks cut inside a CRLF, inside a field name and inside the data; a comment line, a
# two-line data field and an event without a type. Reference: the WHATWG SSE rules.
SSE_CHUNKS = [
    ": keep-alive\r\nevent: tri",
    "al\r",
    '\nid: 7\r\ndata: {"number": 3,\r\ndata:  "state": "complete"}\r\n\r',
    "\ndata: plain\n\nevent: job\ndata: x",
]


def test_sse_parser_follows_the_event_stream_rules(
    page: Any, service: Service, finished_job: dict[str, Any]
) -> None:
    page.goto(f"{service.base_url}/?token={service.token}#/jobs")
    got = page.evaluate(
        """async (chunks) => {
          const { SseParser } = await import('/static/js/sse.js');
          const out = [];
          const parser = new SseParser((e) => out.push(e));
          for (const c of chunks) parser.feed(c);
          return out;
        }""",
        SSE_CHUNKS,
    )
    assert got == [
        {"type": "trial", "data": '{"number": 3,\n "state": "complete"}', "id": "7"},
        {"type": "message", "data": "plain", "id": "7"},
    ]  # the last event has no blank line yet, so it is not dispatched


def test_the_page_requests_nothing_outside_the_service(
    service: Service, requests_seen: list[str]
) -> None:
    # Runs last in this module: every page above recorded its requests here.
    assert len(requests_seen) > 20
    origin = urlsplit(service.base_url)
    outside = [
        url
        for url in requests_seen
        if not url.startswith(("data:", "blob:"))
        and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
    ]
    assert outside == []
    assert any(url.endswith("/static/vendor/plotly.min.js") for url in requests_seen)
