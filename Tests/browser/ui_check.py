#!/usr/bin/python3
"""Drives the mlstore web UI in headless Chromium and checks every page against the store.

usage: ui_check.py BASE_URL EXPECTED_JSON OUT_DIR

BASE_URL       a running `mlstore serve` with anonymous read, e.g. http://127.0.0.1:8470
EXPECTED_JSON  what the CLI says about the same store (written by Tests/MLStoreEndToEndTests/BrowserTests.swift):
                 runs      `mlstore runs --json`
                 series    {run id: [metric keys recorded as step series]}  (from `mlstore metrics <id> --json`)
                 filter    {"q": expression, "runs": `mlstore runs --where <q> --json`}
                 sorted    {"sort": "-metrics.<key>", "runs": `mlstore runs --sort <sort> --json`}
                 lineage   {"start": id, "direction": "up"|"down", "tree": `mlstore lineage <id> --up|--down --format json`}
                 stages    `mlstore stage list --json`
                 history   {"model": name, "events": `mlstore stage log <name> --json`}
OUT_DIR        where one PNG screenshot per page is written

Uses Debian's chromium, chromium-driver and python3-selenium only (never a downloaded browser).
Exits 0 when every check passes, 1 with one line per failed check otherwise, 2 when it cannot run at all.
"""

import json
import os
import signal
import sys
import time
import urllib.parse

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # pragma: no cover - reported to the Swift test
    print(f"ui_check: selenium is missing ({e}); run scripts/install-deps.sh (Debian python3-selenium)", file=sys.stderr)
    sys.exit(2)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TIMEOUT = 20  # seconds to wait for one page or element
DEADLINE = 240  # seconds for the whole check


class Checker:
    """Collects failed checks (so one run reports all of them) and takes the screenshots."""

    def __init__(self, base, expected, out_dir):
        self.base = base.rstrip("/")
        self.expected = expected
        self.out_dir = out_dir
        self.failures = []
        self.shots = []
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                    "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions", "--disable-background-networking"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(TIMEOUT)

    # -- helpers --------------------------------------------------------------------------------------

    def check(self, ok, message):
        if not ok:
            self.failures.append(message)
            print(f"FAIL {message}")
        return ok

    def url(self, path, **query):
        q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, quote_via=urllib.parse.quote)
        return self.base + path + ("?" + q if q else "")

    def open(self, path, **query):
        self.driver.get(self.url(path, **query))
        self.wait_for(By.CSS_SELECTOR, "footer")

    def wait_for(self, by, selector):
        return WebDriverWait(self.driver, TIMEOUT).until(EC.presence_of_element_located((by, selector)))

    def all(self, selector, root=None):
        return (root or self.driver).find_elements(By.CSS_SELECTOR, selector)

    def attr(self, selector, name, root=None):
        return [e.get_attribute(name) for e in self.all(selector, root)]

    def screenshot(self, name):
        """A full-page PNG, 1280 px wide (the viewport grows to the page's height, up to 6000 px)."""
        height = self.driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
        metrics = {"width": 1280, "height": max(900, min(int(height), 6000)), "deviceScaleFactor": 1, "mobile": False}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        path = os.path.join(self.out_dir, name + ".png")
        try:
            self.check(self.driver.save_screenshot(path), f"{name}: the screenshot could not be saved")
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        self.shots.append(path)

    def page_sanity(self, name):
        """The stylesheet is applied, everything came from this server, and the console has no errors."""
        bar = self.driver.execute_script("var e = document.querySelector('.topbar'); return e ? getComputedStyle(e).backgroundColor : ''")
        self.check(bar == "rgb(23, 32, 46)", f"{name}: /static/app.css is not applied (top bar colour {bar!r})")
        origin = urllib.parse.urlsplit(self.base)
        resources = self.driver.execute_script("return performance.getEntriesByType('resource').map(function (r) { return r.name; })")
        for r in resources:
            u = urllib.parse.urlsplit(r)
            self.check(u.scheme in ("data", "") or u.netloc == origin.netloc, f"{name}: loads {r} from another origin")
        for entry in self.driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                self.check(False, f"{name}: browser console error: {entry.get('message')}")

    @staticmethod
    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return None

    def same_value(self, shown, expected):
        """A value as the page shows it against the CLI's JSON value (numbers to 6 significant digits)."""
        if isinstance(expected, bool):
            return shown == ("true" if expected else "false")
        if isinstance(expected, (int, float)):
            n = self.number(shown)
            return n is not None and abs(n - expected) <= 1e-5 * max(1.0, abs(expected))
        return shown == str(expected)

    # -- pages ----------------------------------------------------------------------------------------

    def runs_table(self):
        runs = self.expected["runs"]
        self.open("/")
        rows = self.attr("tr.run-row", "data-run")
        self.check(len(rows) == len(runs), f"runs table: {len(rows)} rows, the store has {len(runs)} runs")
        self.check(set(rows) == {r["id"] for r in runs}, "runs table: the rows are not the store's runs")
        count = self.driver.find_element(By.ID, "run-count").text
        self.check(count == f"{len(runs)} run" + ("" if len(runs) == 1 else "s"), f"runs table: count says {count!r}")
        # One column per param and metric key the runs record.
        keys = {"params." + k for r in runs for k in r["params"]} | {"metrics." + k for r in runs for k in r["metrics"]}
        headers = set(self.attr("thead th[data-key]", "data-key"))
        self.check(keys <= headers, f"runs table: no column for {sorted(keys - headers)}")
        self.page_sanity("runs")
        self.screenshot("01-runs")

    def runs_filter(self):
        f = self.expected["filter"]
        self.open("/")
        box = self.driver.find_element(By.ID, "q")
        box.clear()
        box.send_keys(f["q"])
        box.send_keys(Keys.ENTER)
        WebDriverWait(self.driver, TIMEOUT).until(lambda d: "q=" in d.current_url)
        self.wait_for(By.CSS_SELECTOR, "footer")
        rows = self.attr("tr.run-row", "data-run")
        want = [r["id"] for r in f["runs"]]
        self.check(rows == want, f"filter {f['q']!r}: rows {[r[:12] for r in rows]}, the CLI finds {[w[:12] for w in want]}")
        self.check(self.driver.find_element(By.ID, "q").get_attribute("value") == f["q"], "filter: the box lost the expression")
        self.screenshot("02-runs-filtered")

    def runs_sort(self):
        s = self.expected["sorted"]
        key = s["sort"].lstrip("-")
        self.open("/")
        link = self.driver.find_element(By.CSS_SELECTOR, f'th[data-key="{key}"] a.sort')
        link.click()
        WebDriverWait(self.driver, TIMEOUT).until(lambda d: "sort=" in d.current_url)
        self.wait_for(By.CSS_SELECTOR, "footer")
        if s["sort"].startswith("-") != ("sort=-" in urllib.parse.unquote(self.driver.current_url)):
            # The first click sorts metrics descending; click again for ascending when that is expected.
            self.driver.find_element(By.CSS_SELECTOR, f'th[data-key="{key}"] a.sort').click()
            self.wait_for(By.CSS_SELECTOR, "footer")
        rows = self.attr("tr.run-row", "data-run")
        want = [r["id"] for r in s["runs"]]
        self.check(rows == want, f"sort {s['sort']}: order {[r[:8] for r in rows]}, the CLI's {[w[:8] for w in want]}")
        aria = self.attr(f'th[data-key="{key}"]', "aria-sort")
        self.check(aria == ["descending" if s["sort"].startswith("-") else "ascending"], f"sort: the header says {aria}")
        self.screenshot("03-runs-sorted")

    def bad_query(self):
        self.open("/", q="metrics.acc >")
        errors = self.all("#query-error")
        self.check(len(errors) == 1 and "expected a value" in errors[0].text, "bad query: no parser message on the page")
        self.check(not self.all("tr.run-row"), "bad query: the page still lists runs")
        self.driver.get_log("browser")  # the 400 answer is logged as a failed load; it is the point here
        self.screenshot("04-bad-query")

    def compare(self):
        series = self.expected["series"]
        by_key = {}
        for run in self.expected["runs"]:
            for k in series.get(run["id"], []):
                by_key.setdefault(k, []).append(run["id"])
        key = next((k for k in sorted(by_key) if len(by_key[k]) >= 2), None)
        if not self.check(key is not None, "compare: the store needs two runs with one step-series metric"):
            return
        picked = by_key[key][:2]
        self.open("/")
        button = self.driver.find_element(By.ID, "compare")
        self.check(not button.is_enabled(), "compare: the button is enabled with nothing selected")
        for run in picked:
            self.driver.find_element(By.CSS_SELECTOR, f'tr.run-row[data-run="{run}"] input.select-run').click()
        self.check(button.is_enabled(), "compare: the button stays disabled after selecting two runs")
        button.click()
        WebDriverWait(self.driver, TIMEOUT).until(lambda d: "/compare" in d.current_url)
        chart = self.wait_for(By.CSS_SELECTOR, f'figure.chart[data-metric="{key}"]')
        lines = self.attr("path.series", "data-run", chart)
        self.check(len(lines) == 2, f"compare: the {key} chart has {len(lines)} lines, not 2")
        self.check(sorted(lines) == sorted(picked), f"compare: the {key} chart's lines are not the selected runs")
        for fig in self.all("figure.chart"):
            metric = fig.get_attribute("data-metric")
            n = len(self.all("path.series", fig))
            want = sum(1 for r in picked if metric in series.get(r, []))
            self.check(n == want, f"compare: chart {metric} has {n} lines, {want} selected runs record it as a series")
            self.check(len(self.all("text.axis-label", fig)) == 2, f"compare: chart {metric} lacks axis labels")
        self.check(set(self.attr("#compare-table thead th[data-run]", "data-run")) == set(picked), "compare: the table's columns")
        self.page_sanity("compare")
        self.screenshot("05-compare")

    def run_page(self):
        series = self.expected["series"]
        run = next((r for r in self.expected["runs"] if r["params"] and series.get(r["id"])), None)
        if not self.check(run is not None, "run page: the store needs a run with params and a metric series"):
            return
        self.open("/runs/" + run["id"])
        self.check(self.driver.find_element(By.CSS_SELECTOR, "h1.run-subject").text == run["subject"], "run page: subject")
        for k, v in run["params"].items():
            cells = self.all(f'tr.param[data-key="{k}"] td')
            shown = cells[0].text if cells else None
            self.check(shown is not None and self.same_value(shown, v), f"run page: param {k} shows {shown!r}, recorded {v!r}")
        for k, v in run["metrics"].items():
            cells = self.all(f'tr.metric[data-key="{k}"] td')
            shown = cells[0].text if cells else None
            self.check(shown is not None and self.same_value(shown, v), f"run page: metric {k} shows {shown!r}, recorded {v!r}")
        charted = set(self.attr("figure.chart", "data-metric"))
        self.check(charted == set(series[run["id"]]), f"run page: charts {sorted(charted)}, series {sorted(series[run['id']])}")
        links = self.attr("tr.artifact.output a.download", "href")
        self.check(all("/api/v1/download/" in h for h in links) and links, "run page: no download link for the outputs")
        self.screenshot("06-run")
        # The download link serves the file.
        if links:
            status = self.driver.execute_script(
                "var r = new XMLHttpRequest(); r.open('HEAD', arguments[0], false); r.send(); return r.status;", links[0])
            self.check(status == 200, f"run page: the download link answers {status}")

    def lineage(self):
        lin = self.expected["lineage"]
        want = set()

        def walk(node):
            want.add(node["commit"])
            for c in node["children"]:
                walk(c)

        for t in lin["tree"]:
            walk(t)
        self.open("/lineage/" + lin["start"], direction=lin["direction"])
        nodes = set(self.attr("svg.lineage .lineage-node", "data-run"))
        self.check(nodes == want, f"lineage: graph nodes {sorted(n[:8] for n in nodes)}, the CLI's {sorted(w[:8] for w in want)}")
        items = set(self.attr("li.lineage-item", "data-run"))
        self.check(items == want, "lineage: the tree's items are not the CLI's nodes")
        self.check(len(self.all("svg.lineage path.edge")) >= len(want) - 1, "lineage: edges missing")
        self.page_sanity("lineage")
        self.screenshot("07-lineage")
        # The nav bar's lineage link works too.
        self.driver.find_element(By.LINK_TEXT, "Lineage of HEAD").click()
        self.wait_for(By.CSS_SELECTOR, "footer")
        self.check(len(self.all(".lineage-node")) >= 1, "lineage: 'Lineage of HEAD' shows no node")

    def registry(self):
        stages = self.expected["stages"]
        history = self.expected["history"]
        self.open("/registry")
        for s in stages:
            cells = self.all(f'tr.model-row[data-model="{s["model"]}"] td.stage-cell[data-stage="{s["stage"]}"]')
            got = cells[0].get_attribute("data-run") if cells else None
            self.check(got == (s.get("commit") or ""), f"registry: {s['model']}@{s['stage']} shows {got}, holds {s.get('commit')}")
        self.page_sanity("registry")
        self.screenshot("08-registry")
        self.driver.find_element(By.CSS_SELECTOR, f'tr.model-row[data-model="{history["model"]}"] th a').click()
        self.wait_for(By.CSS_SELECTOR, "footer")
        events = history["events"]
        rows = self.all("tr.stage-event")
        self.check(len(rows) == len(events), f"registry: {len(rows)} history rows, the stage log has {len(events)}")
        self.check([r.get_attribute("data-record") for r in rows] == [e["record"] for e in events], "registry: history order differs from `stage log`")
        reasons = [r.find_element(By.CSS_SELECTOR, "td.reason").text for r in rows]
        self.check(reasons == [e["reason"] or "(no reason given)" for e in events], f"registry: reasons {reasons}")
        self.screenshot("09-model-history")

    def run(self):
        steps = [self.runs_table, self.runs_filter, self.runs_sort, self.bad_query, self.compare, self.run_page, self.lineage, self.registry]
        for step in steps:
            started, failed = time.monotonic(), len(self.failures)
            try:
                step()
            except (TimeoutException, WebDriverException, KeyError, IndexError) as e:
                self.check(False, f"{step.__name__}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                try:
                    self.screenshot(f"failed-{step.__name__}")
                except WebDriverException:
                    pass
            verdict = "ok  " if len(self.failures) == failed else "FAILED"
            print(f"{verdict} {step.__name__} ({time.monotonic() - started:.1f} s)")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base, expected_path, out_dir = sys.argv[1:]
    for path, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            print(f"ui_check: {path} is missing; run scripts/install-deps.sh (Debian {what})", file=sys.stderr)
            return 2
    with open(expected_path) as f:
        expected = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    signal.signal(signal.SIGALRM, lambda *_: (print("ui_check: took too long", file=sys.stderr), os._exit(1)))
    signal.alarm(DEADLINE)
    try:
        checker = Checker(base, expected, out_dir)
    except WebDriverException as e:
        print(f"ui_check: cannot start headless chromium: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        checker.run()
    finally:
        checker.driver.quit()
    print(f"screenshots: {len(checker.shots)} in {out_dir}")
    if checker.failures:
        print(f"ui_check: {len(checker.failures)} check(s) failed", file=sys.stderr)
        for f in checker.failures:
            print("  " + f, file=sys.stderr)
        return 1
    print("ui_check: every page matches the store")
    return 0


if __name__ == "__main__":
    sys.exit(main())
