"""The planner page at `/` driven by headless Debian Chromium against a real server (the
service tests' harness: `territory serve` on a free port, SQLite in a temp folder).

Locally the tests skip when chromium/chromedriver or selenium are missing; with CI set they
fail instead, so a broken CI image cannot pass silently. Screenshots go to
tests/web/artifacts/ (ignored by git)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from optimizer.domain import Scenario
from tests.api.conftest import local_env
from tests.api.harness import (
    SLOW_SCENARIO,
    ApiServer,
    job_state,
    make_key,
    wait_for,
    wait_for_job,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Generous: the solve takes about a second, but a loaded CI machine may be slow to start jobs.
JOB_TIMEOUT = 180


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'selenium>=4.20')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists() and shutil.which(path.name) is None:
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    folder = tmp_path_factory.mktemp("web-service")
    url = f"sqlite:///{folder / 'territory.db'}"
    key = make_key(url, "web")
    api = ApiServer(local_env(url), folder)
    api.start()
    try:
        yield api, key
    finally:
        api.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where Chromium saves what the page downloads."""
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1400,2000"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    # An explicit driver path: Selenium Manager then has nothing to download.
    service = Service(executable_path=str(CHROMEDRIVER if CHROMEDRIVER.exists()
                                          else shutil.which("chromedriver")))
    browser = webdriver.Chrome(options=options, service=service)
    try:
        yield browser
    finally:
        browser.quit()


def _open(driver: Any, server: tuple[ApiServer, str], key: str | None = None) -> None:
    """Load the page and enter the key (kept in localStorage, so clear it first)."""
    from selenium.webdriver.common.by import By

    api, server_key = server
    key = key or server_key
    driver.get(api.url + "/")
    driver.execute_script("localStorage.clear()")
    driver.get(api.url + "/")
    driver.find_element(By.ID, "api-key").send_keys(key)
    driver.find_element(By.ID, "save-key").click()
    wait_for(lambda: "saved" in driver.find_element(By.ID, "key-status").text,
             timeout=30, what="the key to be accepted")


def _upload(driver: Any, folder: Path, **tables: str) -> None:
    """Write each table (accounts, reps, distances) as CSV into `folder` and send them
    through the page's upload form."""
    from selenium.webdriver.common.by import By

    for name, text in tables.items():
        path = folder / f"{name}.csv"
        path.write_text(text)
        driver.find_element(By.ID, f"{name}-file").send_keys(str(path))
    driver.find_element(By.ID, "upload-dataset").click()


def _run_and_wait(driver: Any, server: tuple[ApiServer, str], what: str) -> dict[str, Any]:
    """Click Run, wait for the job to succeed and return its JSON result."""
    from selenium.webdriver.common.by import By

    previous = driver.execute_script("return state.jobId")
    driver.find_element(By.ID, "run").click()
    wait_for(lambda: driver.execute_script("return state.jobId") != previous
             and "succeeded" in _text(driver, "p-state"), timeout=JOB_TIMEOUT, what=what)
    api, key = server
    job = driver.execute_script("return state.jobId")
    result: dict[str, Any] = httpx.get(f"{api.url}/v1/jobs/{job}/result",
                                       headers={"Authorization": f"Bearer {key}"}).json()
    return result


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    text: str = driver.find_element(By.ID, element_id).text
    return text


def _screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _report(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Shown even without -s: the artifact's path is the point of saving it.
    with capsys.disabled():
        print(f"\nscreenshot: {path}")  # noqa: T201


def test_import_run_map_kpis_download(driver: Any, server: tuple[ApiServer, str],
                                      downloads: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(driver, server)
    Select(driver.find_element(By.ID, "bundled-select")).select_by_value("us-regional")
    driver.find_element(By.ID, "import-bundled").click()
    wait_for(lambda: "372 accounts" in _text(driver, "dataset-info"), timeout=60,
             what="the bundled dataset to be imported")

    label = driver.find_element(By.ID, "label")
    label.clear()
    label.send_keys("regional ±10 %")
    driver.find_element(By.ID, "run").click()

    paths = "#map .leaflet-overlay-pane svg path"
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, paths)) == 6,
             timeout=JOB_TIMEOUT, what="6 territory polygons on the map")
    assert "succeeded" in _text(driver, "p-state")
    travel = driver.find_element(By.CSS_SELECTOR, "#kpis td[data-kpi='travel.total']").text
    assert travel not in ("", "—")
    within = driver.find_element(
        By.CSS_SELECTOR, "#kpis td[data-kpi='balance.workload.share_within_tolerance']").text
    assert within == "100.0 %"  # the hard ±10 % band holds for every rep
    assert driver.find_elements(By.CSS_SELECTOR, "#moves table.moves tbody tr")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#compare table.kpi")) == 1

    # A second scenario: the comparison shows both.
    driver.find_element(By.ID, "max-share").send_keys("10")
    label.clear()
    label.send_keys("≤ 10 % moves")
    driver.find_element(By.ID, "run").click()
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#compare table.kpi")) == 2,
             timeout=JOB_TIMEOUT, what="two scenarios side by side")
    moved = driver.find_element(
        By.CSS_SELECTOR, "#kpis td[data-kpi='disruption.accounts_moved_share']").text
    assert float(moved.removesuffix(" %")) <= 10.0

    # Downloads go through fetch (Bearer) and a Blob URL; the page reports the bytes.
    driver.find_element(By.CSS_SELECTOR, "button.download[data-format='csv']").click()
    status = wait_for(lambda: driver.find_element(By.ID, "download-status")
                      .get_attribute("data-bytes"), timeout=60, what="the CSV download")
    assert int(status) > 1000
    name = driver.find_element(By.ID, "download-status").get_attribute("data-name")
    saved = downloads / name
    wait_for(lambda: saved.exists() and saved.stat().st_size == int(status), timeout=30,
             what=f"{saved} to be written")
    assert saved.read_text().startswith("account_id,")

    driver.execute_script("document.getElementById('map').scrollIntoView()")
    _report(_screenshot(driver, "planner-result"), capsys)


def test_bad_upload_lists_the_issues(driver: Any, server: tuple[ApiServer, str],
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, server)
    _upload(driver, tmp_path,
            accounts="account_id,lat,lon,workload\nA1,33.7,-84.4,10\nA2,north,-84.0,-5\n",
            reps="rep_id,lat,lon\nR1,33.7,-84.4\n")

    rows = "#message table.issues tbody tr"
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, rows), timeout=60,
             what="the upload's issues")
    message = _text(driver, "message")
    assert "Upload rejected" in message
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")]
             for row in driver.find_elements(By.CSS_SELECTOR, rows)]
    assert any(c[0] == "reps" and c[2] == "capacity" for c in cells), cells
    assert any(c[0] == "accounts" and c[2] == "lat" for c in cells), cells
    assert _text(driver, "dataset-info") == "none"
    _report(_screenshot(driver, "planner-bad-upload"), capsys)


def test_upload_with_a_distances_file(driver: Any, server: tuple[ApiServer, str],
                                      tmp_path: Path) -> None:
    """Road distances uploaded beside the tables replace the straight-line estimate for the
    pairs they list: here A1 sits next to R1's base in Atlanta, but its file distance to R1
    is 500 km and to R2 (Savannah) 1 km, so the plan gives it to R2."""
    _open(driver, server)
    _upload(driver, tmp_path,
            accounts="account_id,lat,lon,workload,current_rep\n"
                     "A1,33.76,-84.40,10,R1\nA2,33.74,-84.38,10,R1\n"
                     "A3,32.09,-81.10,10,R2\nA4,32.07,-81.08,10,R2\n",
            reps="rep_id,lat,lon,capacity\nR1,33.75,-84.39,100\nR2,32.08,-81.09,100\n",
            distances="from_id,to_id,distance\nA1,R1,500\nA1,R2,1\n")
    wait_for(lambda: "2 distances" in _text(driver, "dataset-info"), timeout=60,
             what="the dataset with its distances")
    assert "2 distances are valid" in _text(driver, "message")
    result = _run_and_wait(driver, server, "the run on the uploaded distances")
    rep_of = {a["account_id"]: a["rep_id"] for a in result["assignments"]}
    assert rep_of["A1"] == "R2", rep_of  # by the file; by geography it is R1's
    assert sorted(rep_of.values()) == ["R1", "R1", "R2", "R2"]  # ±10 %: two accounts each


def test_drive_times_alone_and_a_potential_band(driver: Any, server: tuple[ApiServer, str],
                                                tmp_path: Path) -> None:
    """A dataset of drive times without coordinates: uploaded for the distances file, run by
    it (no circuity), with the page saying why there is no map; then a potential band moves
    an account. By the file A1 and A3 are 1 from R1 and 9 from R2, A2 and A4 the other way
    round, so the travel optimum serves A3 from R1. A1 and A3 hold all the potential: a
    ±50 % potential band splits them, and the cheaper split gives R1 A4 (8) over A2 (9)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    tables = {
        "accounts": "account_id,workload,potential,current_rep\n"
                    "A1,10,100,R1\nA2,10,0,R1\nA3,10,100,R2\nA4,10,0,R2\n",
        "reps": "rep_id,capacity\nR1,100\nR2,100\n",
        "distances": "from_id,to_id,distance\nA1,R1,1\nA1,R2,9\nA2,R1,9\nA2,R2,1\n"
                     "A3,R1,1\nA3,R2,9\nA4,R1,8\nA4,R2,1\n",
    }
    _open(driver, server)
    # Validated for coordinates by default, the upload names the missing columns.
    _upload(driver, tmp_path, **tables)
    wait_for(lambda: "Upload rejected" in _text(driver, "message"), timeout=60,
             what="the upload rejected for lack of coordinates")
    assert "lat" in _text(driver, "message")
    Select(driver.find_element(By.ID, "upload-metric")).select_by_value("matrix")
    _upload(driver, tmp_path, **tables)
    wait_for(lambda: "8 distances" in _text(driver, "dataset-info"), timeout=60,
             what="the matrix-only dataset")
    assert "distances from the file only" in _text(driver, "dataset-info")
    # Runs measure travel as the dataset was validated for; circuity has no say then.
    assert Select(driver.find_element(By.ID, "metric")).first_selected_option \
        .get_attribute("value") == "matrix"
    assert not driver.find_element(By.ID, "circuity").is_enabled()

    result = _run_and_wait(driver, server, "the run on drive times")
    rep_of = {a["account_id"]: a["rep_id"] for a in result["assignments"]}
    assert rep_of == {"A1": "R1", "A2": "R2", "A3": "R1", "A4": "R2"}, rep_of
    assert result["summary"]["objective_terms"]["travel"] == pytest.approx(4)
    assert "No map for this run" in _text(driver, "legend")

    # The band, with the other settings the form sends: two accounts each, moves counted
    # in workload, no gap left.
    driver.find_element(By.ID, "potential-tolerance").send_keys("50")
    driver.find_element(By.ID, "accounts-tolerance").send_keys("0")
    Select(driver.find_element(By.ID, "disruption-measure")).select_by_value("workload")
    gap = driver.find_element(By.ID, "mip-gap")
    gap.clear()
    gap.send_keys("0")
    result = _run_and_wait(driver, server, "the run with a potential band")
    rep_of = {a["account_id"]: a["rep_id"] for a in result["assignments"]}
    assert rep_of == {"A1": "R1", "A2": "R2", "A3": "R2", "A4": "R1"}, rep_of
    api, key = server
    sent = httpx.get(f"{api.url}/v1/jobs/{driver.execute_script('return state.jobId')}/scenario",
                     headers={"Authorization": f"Bearer {key}"}).json()["scenario"]
    assert sent["balance"]["potential"] == {"tolerance": 0.5, "hard": True}, sent
    assert sent["balance"]["accounts"] == {"tolerance": 0}, sent
    assert sent["disruption"] == {"measure": "workload"}, sent
    assert sent["solver"]["mip_gap"] == 0, sent


def test_limits_soft_bands_families_and_eligibility(driver: Any,
                                                    server: tuple[ApiServer, str],
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The settings under "More settings", each changing the plan or the run's warnings. By
    the drive times, A1 and A3 are near R1, A2 and A4 near R2 (A3 is 7 from R2, A4 8 from
    R1). Enterprise A4 may only go to R1 (a field rep), and R1 may carry at most 25 h (10 h an
    account), so besides A4 it keeps one of A1 and A3: the cheaper plan moves A3 (travel
    1 + 1 + 7 + 8 = 17, against 9 + 1 + 1 + 8 = 19). A1's parent is A2: kept together, the
    family goes to R2 (10 either way) and A3 stays with R1 (travel 19)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    tables = {
        "accounts": "account_id,workload,potential,current_rep,segment,parent_id\n"
                    "A1,10,100,R1,smb,A2\nA2,10,0,R1,smb,\nA3,10,100,R2,smb,\n"
                    "A4,10,0,R2,enterprise,\n",
        "reps": "rep_id,capacity,role\nR1,100,field\nR2,100,inside\n",
        "distances": "from_id,to_id,distance\nA1,R1,1\nA1,R2,9\nA2,R1,9\nA2,R2,1\n"
                     "A3,R1,1\nA3,R2,7\nA4,R1,8\nA4,R2,1\n",
    }
    _open(driver, server)
    Select(driver.find_element(By.ID, "upload-metric")).select_by_value("matrix")
    _upload(driver, tmp_path, **tables)
    wait_for(lambda: "8 distances" in _text(driver, "dataset-info"), timeout=60,
             what="the matrix-only dataset")
    field = {name: driver.find_element(By.ID, name) for name in (
        "tolerance", "workload-max", "potential-tolerance", "potential-hard",
        "potential-weight", "keep-hierarchies", "eligibility", "threads")}
    assert not field["workload-max"].is_displayed()  # folded away until asked for
    driver.find_element(By.CSS_SELECTOR, "#more-settings summary").click()
    field["tolerance"].clear()  # no band around the fair share: the 25 h limit alone
    field["workload-max"].send_keys("25")
    field["eligibility"].send_keys("enterprise: field")
    field["threads"].send_keys("1")
    field["keep-hierarchies"].click()
    # A soft potential band: its weight is asked for once it is soft. With the objective's
    # balance weight at 0 it cannot act, and the run says so.
    field["potential-tolerance"].send_keys("0")
    assert not field["potential-weight"].is_enabled()
    field["potential-hard"].click()
    assert field["potential-weight"].is_enabled()
    field["potential-weight"].clear()
    field["potential-weight"].send_keys("2")
    driver.execute_script("document.getElementById('more-settings').scrollIntoView()")
    _report(_screenshot(driver, "planner-more-settings"), capsys)

    result = _run_and_wait(driver, server, "the run with limits and eligibility")
    rep_of = {a["account_id"]: a["rep_id"] for a in result["assignments"]}
    assert rep_of == {"A1": "R1", "A2": "R2", "A3": "R2", "A4": "R1"}, rep_of
    assert result["summary"]["objective_terms"]["travel"] == pytest.approx(17)
    wait_for(lambda: "Finished with warnings" in _text(driver, "message"), timeout=30,
             what="the run's warnings")
    assert "soft potential band has no effect" in _text(driver, "message")
    api, key = server
    sent = httpx.get(f"{api.url}/v1/jobs/{driver.execute_script('return state.jobId')}/scenario",
                     headers={"Authorization": f"Bearer {key}"}).json()["scenario"]
    assert sent["balance"] == {"workload": {"tolerance": None, "max": 25},
                               "potential": {"tolerance": 0, "hard": False, "weight": 2}}, sent
    assert sent["keep_hierarchies"] is False, sent
    assert sent["eligibility"] == {"enterprise": ["field"]}, sent
    assert sent["solver"]["threads"] == 1, sent

    field["keep-hierarchies"].click()
    result = _run_and_wait(driver, server, "the run keeping A1 with its parent")
    rep_of = {a["account_id"]: a["rep_id"] for a in result["assignments"]}
    assert rep_of == {"A1": "R2", "A2": "R2", "A3": "R1", "A4": "R1"}, rep_of
    assert result["summary"]["objective_terms"]["travel"] == pytest.approx(19)

    # A line the page cannot read never reaches the service.
    last_job = driver.execute_script("return state.jobId")
    field["eligibility"].clear()
    field["eligibility"].send_keys("enterprise field")
    driver.find_element(By.ID, "run").click()
    wait_for(lambda: "Scenario not sent" in _text(driver, "message"), timeout=30,
             what="the unreadable eligibility line to be refused")
    assert "line 1" in _text(driver, "message")
    assert driver.execute_script("return state.jobId") == last_job
    # Designs take hard bands only, and have no reps' roles to be eligible for.
    Select(driver.find_element(By.ID, "mode")).select_by_value("design")
    assert not field["potential-hard"].is_enabled()
    assert not field["potential-weight"].is_enabled()
    assert not field["eligibility"].is_enabled()


def test_an_infeasible_scenario_says_why(driver: Any, server: tuple[ApiServer, str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from selenium.webdriver.common.by import By

    _open(driver, server)
    driver.find_element(By.ID, "import-bundled").click()
    wait_for(lambda: "372 accounts" in _text(driver, "dataset-info"), timeout=60,
             what="the bundled dataset to be imported")
    tolerance = driver.find_element(By.ID, "tolerance")
    tolerance.clear()
    tolerance.send_keys("0")
    driver.find_element(By.ID, "run").click()
    wait_for(lambda: "infeasible" in _text(driver, "message"), timeout=JOB_TIMEOUT,
             what="the infeasibility message")
    assert driver.find_elements(By.CSS_SELECTOR, "#message ul.reasons li")
    assert "failed" in _text(driver, "p-state")
    _report(_screenshot(driver, "planner-infeasible"), capsys)


def test_design_mode_draws_the_requested_territories(driver: Any,
                                                     server: tuple[ApiServer, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(driver, server)
    driver.find_element(By.ID, "import-bundled").click()
    wait_for(lambda: "372 accounts" in _text(driver, "dataset-info"), timeout=60,
             what="the bundled dataset to be imported")
    Select(driver.find_element(By.ID, "mode")).select_by_value("design")
    territories = driver.find_element(By.ID, "territories")
    assert territories.is_enabled()
    territories.clear()
    territories.send_keys("4")
    # Centres from a list of ids: an unknown one is refused, with the service's message.
    centre_ids = driver.find_element(By.ID, "centre-ids")
    assert not centre_ids.is_enabled()
    Select(driver.find_element(By.ID, "centres")).select_by_value("listed")
    assert centre_ids.is_enabled()
    centre_ids.send_keys("GN4178992, NOPE")
    driver.find_element(By.ID, "run").click()
    wait_for(lambda: "Scenario rejected" in _text(driver, "message"), timeout=30,
             what="the unknown centre to be refused")
    assert "not an account" in _text(driver, "message") and "NOPE" in _text(driver, "message")
    listed = ["GN4178992", "GN4188197", "GN4195168", "GN4204838", "GN4213919", "GN4224413"]
    centre_ids.clear()
    centre_ids.send_keys(", ".join(listed[:3]) + " " + " ".join(listed[3:]))
    driver.find_element(By.ID, "run").click()
    paths = "#map .leaflet-overlay-pane svg path"
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, paths)) == 4,
             timeout=JOB_TIMEOUT, what="4 designed territories on the map")
    # A greenfield design has no "before": the table shows the plan's figures alone.
    headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#kpis thead th")]
    assert headers == ["Figure", "After"]
    api, key = server
    job = driver.execute_script("return state.jobId")
    result = httpx.get(f"{api.url}/v1/jobs/{job}/result",
                       headers={"Authorization": f"Bearer {key}"}).json()
    assert {t["centre"] for t in result["territories"]} <= set(listed)


def test_contiguous_design_on_county_polygons(driver: Any, server: tuple[ApiServer, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(driver, server)
    contiguity = driver.find_element(By.ID, "contiguity")
    assert not contiguity.is_enabled() and "needs" in _text(driver, "contiguity-note")
    centres = Select(driver.find_element(By.ID, "centres"))
    Select(driver.find_element(By.ID, "bundled-select")).select_by_value("ga-counties")
    driver.find_element(By.ID, "import-bundled").click()
    wait_for(lambda: "159 unit polygons" in _text(driver, "dataset-info"), timeout=60,
             what="the counties and their polygons to be imported")
    # No reps: the page switches to design; the polygons make contiguity possible.
    assert Select(driver.find_element(By.ID, "mode")).first_selected_option \
        .get_attribute("value") == "design"
    assert contiguity.is_enabled() and not contiguity.is_selected()
    contiguity.click()
    # Territory centres at county polygons (the job's scenario says centres: units).
    assert driver.find_element(By.ID, "centres").is_enabled()
    centres.select_by_value("units")
    for field, value in (("territories", "5"), ("tolerance", "20"), ("time-limit", "5")):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    # Keep the job bodies the page submits, to check the scenario it sends.
    driver.execute_script(
        "window.sentJobs = []; const send = window.fetch;"
        "window.fetch = (url, options) => {"
        "  if (String(url).endsWith('/v1/jobs') && options && options.body)"
        "    window.sentJobs.push(options.body);"
        "  return send(url, options); };")
    driver.find_element(By.ID, "run").click()

    paths = "#map .leaflet-overlay-pane svg path"
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, paths)) == 5,
             timeout=JOB_TIMEOUT, what="5 contiguous territories on the map")
    assert "succeeded" in _text(driver, "p-state")
    sent = json.loads(driver.execute_script("return window.sentJobs[0]"))
    assert sent["kind"] == "design" and sent["scenario"]["centres"] == "units", sent
    parts = driver.find_element(By.CSS_SELECTOR,
                                "#kpis td[data-kpi='geography.disconnected_parts']").text
    assert parts == "0"  # every territory in one piece
    within = driver.find_element(
        By.CSS_SELECTOR, "#kpis td[data-kpi='balance.workload.share_within_tolerance']").text
    assert within == "100.0 %"  # the hard ±20 % band holds for every territory
    driver.execute_script("document.getElementById('map').scrollIntoView()")
    _report(_screenshot(driver, "planner-contiguous-design"), capsys)


def test_runs_reopen_after_a_reload_and_delete(driver: Any, server: tuple[ApiServer, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Runs submitted elsewhere (here: the API) are listed, reopen on the map after a reload,
    and delete with the service's refusals shown; so does a dataset. A tenant of its own, so
    the other tests' runs and datasets are not touched."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    api, _ = server
    key = make_key(api.env["DATABASE_URL"], "web-runs")
    client = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"},
                          timeout=60)
    dataset = client.post("/v1/bundled/us-regional").json()
    quick = {"circuity": 1.2, "solver": {"time_limit": 20}}
    # Every setting away from its default; the limits are loose enough not to bind, and the
    # soft potential band, with no balance weight, draws a warning.
    scenario = {"circuity": 1.3, "keep_hierarchies": False,
                "balance": {"workload": {"tolerance": 0.1, "max": 1500},
                            "potential": {"min": 20e6, "hard": False, "weight": 2},
                            "accounts": {"tolerance": 0.25, "max": 80}},
                "eligibility": {"A": ["enterprise", "commercial"]},
                "disruption": {"measure": "workload"},
                "solver": {"time_limit": 20, "mip_gap": 0.0125, "threads": 1}}
    job = client.post("/v1/jobs", json={"kind": "align", "dataset_id": dataset["id"],
                                        "label": "reopen me", "scenario": scenario}).json()
    batch = client.post("/v1/batches", json={"dataset_id": dataset["id"], "scenarios": [
        {"label": "batch ±10 %", "scenario": quick}]}).json()
    batch_job = batch["jobs"][0]["id"]
    for job_id in (job["id"], batch_job):
        wait_for_job(client, job_id, timeout=JOB_TIMEOUT)

    _open(driver, server, key)
    row = f"#runs tr[data-job='{job['id']}']"
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, row), timeout=30,
             what="the run in the list")
    assert "(2)" in _text(driver, "runs-count")
    assert "reopen me" in driver.find_element(By.CSS_SELECTOR, row).text
    # Reopen: the map, the figures and the comparison come back without rerunning anything.
    driver.find_element(By.CSS_SELECTOR, f"{row} button[data-action='open']").click()
    paths = "#map .leaflet-overlay-pane svg path"
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, paths)) == 6, timeout=60,
             what="the reopened run's 6 territories")
    assert "reopen me" in _text(driver, "result-label")
    assert "succeeded" in _text(driver, "p-state")
    # Its scenario and dataset fill the form, to be changed and run again, with the settings
    # under "More settings" unfolded; the run's warning is shown.
    value = {name: driver.find_element(By.ID, name).get_attribute("value")
             for name in ("label", "mode", "metric", "circuity", "time-limit", "tolerance",
                          "workload-max", "potential-tolerance", "potential-min",
                          "potential-weight", "accounts-tolerance", "accounts-max",
                          "eligibility", "threads", "disruption-measure", "mip-gap")}
    assert value == {"label": "reopen me", "mode": "align", "metric": "haversine",
                     "circuity": "1.3", "time-limit": "20", "tolerance": "10",
                     "workload-max": "1500", "potential-tolerance": "",
                     "potential-min": "20000000", "potential-weight": "2",
                     "accounts-tolerance": "25", "accounts-max": "80",
                     "eligibility": "A: enterprise, commercial", "threads": "1",
                     "disruption-measure": "workload", "mip-gap": "1.25"}, value
    checked = {name: driver.find_element(By.ID, name).is_selected()
               for name in ("workload-hard", "potential-hard", "accounts-hard",
                            "keep-hierarchies")}
    assert checked == {"workload-hard": True, "potential-hard": False, "accounts-hard": True,
                       "keep-hierarchies": False}, checked
    assert driver.find_element(By.ID, "more-settings").get_attribute("open") is not None
    assert driver.find_element(By.ID, "dataset-info").get_attribute("data-id") == dataset["id"]
    assert driver.find_element(By.ID, "run").is_enabled()
    wait_for(lambda: "soft potential band has no effect" in _text(driver, "message"),
             timeout=30, what="the reopened run's warning")
    assert "no field" not in _text(driver, "message")
    # A run from the form asks for the same scenario (as the service reads it).
    again = driver.execute_script("return scenarioFromForm()")
    assert Scenario.model_validate(again) == Scenario.model_validate(scenario), again
    assert driver.find_element(By.CSS_SELECTOR, "#kpis td[data-kpi='travel.total']").text \
        not in ("", "—")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#compare table.kpi")) == 1
    # Opened again (as the button does, awaited), it is not compared with itself.
    driver.execute_async_script("openRun(arguments[0]).then(arguments[1])", job["id"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#compare table.kpi")) == 1

    # A job of a batch goes with its batch: the service's 409 reaches the planner.
    batch_row = f"#runs tr[data-job='{batch_job}']"
    driver.find_element(By.CSS_SELECTOR, f"{batch_row} button[data-action='delete']").click()
    driver.switch_to.alert.accept()
    wait_for(lambda: batch["id"] in _text(driver, "message"), timeout=30,
             what="the refusal naming the batch")
    assert client.get(f"/v1/jobs/{batch_job}").status_code == 200

    driver.find_element(By.CSS_SELECTOR, f"{row} button[data-action='delete']").click()
    driver.switch_to.alert.dismiss()  # changing one's mind keeps the run
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    driver.find_element(By.CSS_SELECTOR, f"{row} button[data-action='delete']").click()
    driver.switch_to.alert.accept()
    wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, row), timeout=30,
             what="the deleted run to leave the list")
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert "(deleted)" in _text(driver, "result-label")
    assert all(not b.is_enabled() for b in driver.find_elements(By.CSS_SELECTOR,
                                                                "button.download"))
    assert not driver.find_elements(By.CSS_SELECTOR, "#compare table.kpi")

    # A run still going is followed (and can be cancelled) from the list; it cannot be deleted.
    slow = client.post("/v1/jobs", json={"kind": "align", "dataset_id": dataset["id"],
                                         "label": "follow me", "scenario": SLOW_SCENARIO}).json()
    wait_for(lambda: (job_state(client, slow["id"]).get("progress") or {}).get("incumbent"),
             timeout=JOB_TIMEOUT, what="the slow run's first incumbent")
    driver.find_element(By.ID, "refresh-runs").click()
    slow_row = f"#runs tr[data-job='{slow['id']}']"
    follow = wait_for(lambda: driver.find_elements(
        By.CSS_SELECTOR, f"{slow_row} button[data-action='open']"), timeout=30,
        what="the running run in the list")[0]
    assert follow.text == "Follow"
    assert not driver.find_element(By.CSS_SELECTOR,
                                   f"{slow_row} button[data-action='delete']").is_enabled()
    follow.click()
    wait_for(lambda: "running" in _text(driver, "p-state"), timeout=30,
             what="the page to follow the run")
    driver.find_element(By.ID, "cancel").click()
    wait_for(lambda: "cancelled" in _text(driver, "p-state"), timeout=JOB_TIMEOUT,
             what="the followed run to be cancelled")
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, paths)) == 6, timeout=60,
             what="the best plan found before the stop")
    assert "follow me" in _text(driver, "result-label")

    # The dataset: in use by nothing that is still running, so it goes.
    Select(driver.find_element(By.ID, "existing-select")).select_by_value(dataset["id"])
    driver.find_element(By.ID, "delete-dataset").click()
    driver.switch_to.alert.accept()
    wait_for(lambda: "Dataset deleted" in _text(driver, "message"), timeout=30,
             what="the dataset to be deleted")
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert dataset["id"] not in [o.get_attribute("value") for o in driver.find_elements(
        By.CSS_SELECTOR, "#existing-select option")]
    # The batch's run keeps its result, and opened, it says that its dataset is gone.
    assert client.get(f"/v1/jobs/{batch_job}/result").status_code == 200
    driver.find_element(By.CSS_SELECTOR, f"{batch_row} button[data-action='open']").click()
    wait_for(lambda: "Its dataset is deleted" in _text(driver, "message"), timeout=30,
             what="the opened run's note on its deleted dataset")
    _report(_screenshot(driver, "planner-runs"), capsys)
    client.close()


def test_runs_are_paged_newest_first(driver: Any, server: tuple[ApiServer, str]) -> None:
    """21 runs of a tenant of its own: the list shows the newest 20, Older reaches the
    first, and deleting the only run of the last page goes back to the page before."""
    from selenium.webdriver.common.by import By

    api, _ = server
    key = make_key(api.env["DATABASE_URL"], "web-pages")
    client = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"},
                          timeout=60)
    data = {"accounts": [{"account_id": f"A{i}", "lat": 33.7 + i / 100, "lon": -84.4,
                          "workload": 10} for i in range(4)],
            "reps": [{"rep_id": "R1", "lat": 33.7, "lon": -84.4, "capacity": 100},
                     {"rep_id": "R2", "lat": 33.8, "lon": -84.4, "capacity": 100}]}
    jobs = [client.post("/v1/jobs", json={"kind": "align", "data": data, "label": f"run {n:02}",
                                          "scenario": {"solver": {"time_limit": 20}}}).json()
            for n in range(1, 22)]
    for job in jobs:
        wait_for_job(client, job["id"], timeout=JOB_TIMEOUT)

    _open(driver, server, key)
    first_row = f"#runs tr[data-job='{jobs[0]['id']}']"
    wait_for(lambda: "of 21" in _text(driver, "runs-count"), timeout=30, what="the first page")
    assert "1–20 of 21" in _text(driver, "runs-count")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 20
    assert not driver.find_elements(By.CSS_SELECTOR, first_row)
    assert "run 21" in driver.find_element(By.CSS_SELECTOR, "#runs tbody tr").text  # newest
    assert not driver.find_element(By.ID, "runs-newer").is_enabled()

    driver.find_element(By.ID, "runs-older").click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, first_row), timeout=30,
             what="the oldest run on the second page")
    assert "21–21 of 21" in _text(driver, "runs-count")
    assert not driver.find_element(By.ID, "runs-older").is_enabled()

    driver.find_element(By.CSS_SELECTOR, f"{first_row} button[data-action='delete']").click()
    driver.switch_to.alert.accept()
    wait_for(lambda: _text(driver, "runs-count") == "(20)", timeout=30,
             what="the list back on its only page")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 20
    assert client.get(f"/v1/jobs/{jobs[0]['id']}").status_code == 404
    client.close()
