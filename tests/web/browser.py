#!/usr/bin/python3
"""The web door in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by Debian's python3-selenium. Run by browser_test.cpp against a real daemon, Orthanc and
the XNAT stand-in; prints one JSON line with what it saw, exits 1 with the reason on failure.

Steps: log in; submit a CSV with an error and read the problem's line and column; submit the
fixed CSV (check, dry run, queue); watch the job until every row is final (one row fails: the
test made XNAT refuse the first upload); retry the failed row and watch it reach verified. A
screenshot of each page is saved under --shots.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def browser(profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--user-data-dir=" + profile):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


class Run:
    def __init__(self, args, driver):
        self.a = args
        self.d = driver
        self.seen = {}

    def shot(self, name):
        self.d.save_screenshot(os.path.join(self.a.shots, name + ".png"))

    def wait(self, what, condition, timeout=30):
        try:
            # The pages redraw their tables every 2 s: an element read mid-redraw is stale.
            return WebDriverWait(self.d, timeout, poll_frequency=0.25,
                                 ignored_exceptions=(StaleElementReferenceException,)
                                 ).until(lambda d: condition())
        except Exception:
            self.shot("failed-" + what.replace(" ", "-"))
            raise AssertionError("timed out waiting for " + what + " on " + self.d.current_url)

    def login(self):
        self.d.get(self.a.url + "/login")
        self.shot("login")
        self.d.find_element(By.ID, "user").send_keys(self.a.user)
        self.d.find_element(By.ID, "password").send_keys(self.a.password)
        self.d.find_element(By.ID, "login").click()
        self.wait("the jobs page", lambda: self.d.current_url.endswith("/jobs"))
        self.wait("the user's name", lambda: self.a.user in self.d.find_element(By.ID, "whoami").text)

    def choose(self, csv_path):
        self.d.get(self.a.url + "/submit")
        Select(self.d.find_element(By.ID, "project")).select_by_visible_text(self.a.project)
        self.d.find_element(By.ID, "csv").send_keys(csv_path)

    def submit_with_error(self):
        self.choose(self.a.bad_csv)
        self.d.find_element(By.ID, "check").click()
        table = self.d.find_element(By.ID, "problems")
        self.wait("the CSV's problems", lambda: table.is_displayed() and
                  table.find_elements(By.CSS_SELECTOR, "tbody tr"))
        cells = table.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")
        self.seen["problem"] = {"line": cells[0].text, "column": cells[1].text, "text": cells[2].text}
        assert not self.d.find_element(By.ID, "queue").is_enabled(), "queue enabled on a bad CSV"
        self.shot("submit-error")

    def submit_fixed(self):
        self.choose(self.a.good_csv)
        self.d.find_element(By.ID, "check").click()
        queue = self.d.find_element(By.ID, "queue")
        self.wait("the CSV to pass the check", lambda: queue.is_enabled())
        self.d.find_element(By.ID, "dry-run").click()
        details = self.d.find_element(By.ID, "details")
        self.wait("the dry run's findings", lambda: "rows found" in details.text, 60)
        self.seen["dry_run"] = details.text
        self.shot("submit-dry-run")
        queue.click()
        self.wait("the job page", lambda: "/jobs/" in self.d.current_url, 60)
        self.seen["job"] = int(self.d.current_url.rsplit("/", 1)[1])

    def row_states(self):
        # One read of the whole table (it is redrawn every 2 s).
        return self.d.execute_script(
            "return Array.from(document.querySelectorAll('#items tbody tr.item'))"
            ".map(function (r) { return r.dataset.state; });")

    def follow_and_retry(self):
        final = ("verified", "failed", "cancelled")
        self.wait("every row to finish", lambda: self.row_states() and
                  all(s in final for s in self.row_states()), self.a.timeout)
        self.seen["first_pass"] = self.row_states()
        reasons = self.d.execute_script(
            "return Array.from(document.querySelectorAll('#items tbody td.reason'))"
            ".map(function (c) { return c.textContent; });")
        self.seen["reasons"] = [r for r in reasons if r]
        self.shot("job-with-failure")
        self.d.find_element(By.ID, "retry").click()
        self.wait("every row verified after the retry", lambda: self.row_states() and
                  all(s == "verified" for s in self.row_states()), self.a.timeout)
        self.seen["after_retry"] = self.row_states()
        # A click on a row shows its series: expected, received and verified instances each.
        self.d.find_elements(By.CSS_SELECTOR, "#items tbody tr.item")[0].click()
        self.wait("the row's series", lambda: self.d.execute_script(
            "return document.querySelectorAll('#items tr.series table tr').length") >= 3)
        self.seen["series"] = self.d.execute_script(
            "return Array.from(document.querySelectorAll('#items tr.series table tr'))"
            ".slice(1).map(function (r) { return Array.from(r.cells).map(function (c) {"
            " return c.textContent; }); });")
        self.wait("the job's state", lambda: self.d.find_element(By.ID, "summary")
                  .get_attribute("data-state") == "done")
        self.shot("job-verified")
        self.d.get(self.a.url + "/jobs")
        self.wait("the job in the list", lambda: self.d.find_elements(
            By.CSS_SELECTOR, "#jobs tbody tr[data-job='%d']" % self.seen["job"]))
        self.shot("jobs")


def main():
    ap = argparse.ArgumentParser()
    for name in ("--url", "--user", "--password", "--project", "--bad-csv", "--good-csv", "--shots"):
        ap.add_argument(name, required=True)
    ap.add_argument("--timeout", type=float, default=180)
    args = ap.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="p2x-chromium-") as profile:
        driver = browser(profile)
        run = Run(args, driver)
        try:
            run.login()
            run.submit_with_error()
            run.submit_fixed()
            run.follow_and_retry()
        except Exception as e:
            print(json.dumps({"ok": False, "error": str(e), "seen": run.seen}), flush=True)
            return 1
        finally:
            driver.quit()
    print(json.dumps({"ok": True, "seen": run.seen}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
