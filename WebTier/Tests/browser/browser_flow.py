#!/usr/bin/env python3
"""The web tier in a real browser: headless Chromium, driven by selenium, against the running rig.

  python3 WebTier/Tests/browser/browser_flow.py [--screenshots DIR] [--through-lb]

Reads the rig's ports from docker/.rig/env (start it with `docker/rig up`); the steps name instances web1..web3, and
--through-lb sends every one of them through the load balancer instead, as a person would. Each step prints "ok" or
"FAIL", and the
last line is "N passed, M failed". Screenshots of every page, at desktop and phone width, go to DIR
(default docker/.rig/screenshots).
"""
import argparse
import datetime
import json
import os
import re
import sys
import time
import zoneinfo

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait as SeleniumWait


def WebDriverWait(driver, timeout):
    """Waits that ride out a page being replaced: a script run while htmx reloads the page can fail once."""
    return SeleniumWait(driver, timeout, ignored_exceptions=(WebDriverException,))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PASSED, FAILED = [], []


def rig_urls():
    env = {}
    with open(os.path.join(ROOT, "docker", ".rig", "env")) as file:
        for line in file:
            key, _, value = line.strip().partition("=")
            env[key] = value
    return {name: f"http://127.0.0.1:{env[name.upper() + '_PORT']}" for name in ("lb", "web1", "web2", "web3")}


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class Flow:
    def __init__(self, urls, screenshots):
        self.urls = urls
        self.screenshots = screenshots
        self.console_errors = []

    def step(self, name, check):
        try:
            check()
            PASSED.append(name)
            print(f"ok    {name}", flush=True)
        except Exception as error:  # a failed step is reported, and the next steps still run
            FAILED.append(name)
            print(f"FAIL  {name}: {type(error).__name__}: {error}", flush=True)

    def shoot(self, driver, name):
        """Desktop and phone-width screenshots of the current page."""
        for label, (width, height) in (("desktop", (1280, 900)), ("phone", (390, 844))):
            driver.set_window_size(width, height)
            driver.save_screenshot(os.path.join(self.screenshots, f"{name}-{label}.png"))
        driver.set_window_size(1280, 900)

    # Chrome logs a document or XHR answered 401, 422 or 429 as "Failed to load resource": those are this site's
    # deliberate answers (a wrong password, a refused zone, too many attempts), shown as pages. Every other entry at
    # error level, every script error and any other failed load, counts.
    EXPECTED_STATUS = re.compile(r"Failed to load resource: the server responded with a status of (401|422|429)")

    def collect_console(self, driver, page):
        for entry in driver.get_log("browser"):
            if entry.get("level") == "SEVERE" and not self.EXPECTED_STATUS.search(entry.get("message", "")):
                self.console_errors.append(f"{page}: {entry.get('message')}")

    def open(self, driver, url, page):
        driver.get(url)
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
        self.collect_console(driver, page)

    @staticmethod
    def zone(driver):
        return driver.find_element(By.CSS_SELECTOR, "[data-timezone]").get_attribute("data-timezone")

    @staticmethod
    def check_shown_time(driver, zone):
        """The page's <time data-now> text is the test's clock in `zone`, within two minutes."""
        shown = driver.find_element(By.CSS_SELECTOR, "time[data-now]").text
        match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", shown)
        assert match, f"no time in {shown!r}"
        local = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        expected = datetime.datetime.now(zoneinfo.ZoneInfo(zone)).replace(tzinfo=None)
        drift = abs((expected - local).total_seconds())
        assert drift < 120, f"shown {shown!r}, the clock in {zone} says {expected:%Y-%m-%d %H:%M:%S}"

    def sign_in(self, driver, base, page):
        self.open(driver, base + "/", page)
        driver.find_element(By.NAME, "username").send_keys("alice")
        driver.find_element(By.NAME, "password").send_keys("wonderland")
        driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-timezone]"))
        self.collect_console(driver, page)

    @staticmethod
    def network(driver):
        """POSTs to /settings seen since the last call: request headers, status, response headers."""
        requests = {}
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                request = params["request"]
                if request["url"].endswith("/settings") and request["method"] == "POST":
                    requests[params["requestId"]] = {"headers": {k.lower(): v for k, v in request["headers"].items()}}
            elif message["method"] == "Network.responseReceived" and params["requestId"] in requests:
                response = params["response"]
                requests[params["requestId"]]["status"] = response["status"]
                requests[params["requestId"]]["response"] = {k.lower(): v for k, v in response["headers"].items()}
        return list(requests.values())

    def choose_zone_with_htmx(self, driver, zone):
        """Picks `zone` (added to the list when the site does not offer it) and submits the htmx form."""
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return typeof window.htmx === 'object'"))
        driver.execute_script(
            """
            const select = document.querySelector('select[name=timezone]');
            if (![...select.options].some(o => o.value === arguments[0])) select.add(new Option(arguments[0], arguments[0]));
            select.value = arguments[0];
            window.__beforeSubmit = true;
            """,
            zone,
        )
        self.network(driver)  # forget earlier requests
        driver.find_element(By.CSS_SELECTOR, "form[action='/settings'] button[type=submit]").click()

    def run(self):
        alice, other = browser(), browser()
        try:
            self.flow(alice, other)
        finally:
            alice.quit()
            other.quit()

    def flow(self, alice, other):
        web1, web2, web3 = self.urls["web1"], self.urls["web2"], self.urls["web3"]

        def signs_in_on_web1():
            self.sign_in(alice, web1, "landing")
            if self.zone(alice) != "Europe/Paris":  # a rig that already ran its checker: put the seed back
                self.open(alice, web1 + "/settings", "settings")
                self.choose_zone_with_htmx(alice, "Europe/Paris")
                WebDriverWait(alice, 10).until(lambda d: d.execute_script("return window.__beforeSubmit") is None)
                self.open(alice, web1 + "/", "landing")
            assert self.zone(alice) == "Europe/Paris", self.zone(alice)
            self.check_shown_time(alice, "Europe/Paris")
            self.shoot(alice, "1-landing-europe-paris")

        self.step("sign in as alice through web1: the landing page shows Europe/Paris time", signs_in_on_web1)

        def changes_zone_with_htmx_on_web2():
            self.open(alice, web2 + "/settings", "settings")
            groups = alice.find_elements(By.CSS_SELECTOR, "select[name=timezone] optgroup")
            assert len(groups) >= 8, f"{len(groups)} regions"
            assert alice.find_elements(By.CSS_SELECTOR, "option[value='Asia/Kolkata']"), "no Asia/Kolkata"
            assert alice.find_element(By.CSS_SELECTOR, "option[selected]").get_attribute("value") == "Europe/Paris"
            assert alice.find_element(By.CSS_SELECTOR, "label select[name=timezone]"), "the select has no label"
            self.shoot(alice, "2-settings")
            self.choose_zone_with_htmx(alice, "Asia/Tokyo")
            # HX-Refresh: htmx reloads the page by itself, which drops the marker set before the submit.
            WebDriverWait(alice, 10).until(lambda d: d.execute_script("return window.__beforeSubmit") is None)
            WebDriverWait(alice, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
            self.collect_console(alice, "settings after htmx")
            posts = self.network(alice)
            assert len(posts) == 1, f"{len(posts)} POSTs to /settings"
            post = posts[0]
            assert post["headers"].get("hx-request") == "true", f"request headers {post['headers']}"
            assert post.get("status") == 204, f"status {post.get('status')}"
            assert post["response"].get("hx-refresh") == "true", f"response headers {post['response']}"
            assert self.zone(alice) == "Asia/Tokyo", self.zone(alice)
            assert "/settings" in alice.current_url
            self.check_shown_time(alice, "Asia/Tokyo")
            self.shoot(alice, "3-settings-after-htmx-asia-tokyo")

        self.step("on web2 the htmx form posts HX-Request, gets 204 + HX-Refresh, the page reloads", changes_zone_with_htmx_on_web2)

        def web3_shows_the_new_zone():
            self.open(alice, web3 + "/", "landing")
            assert self.zone(alice) == "Asia/Tokyo", self.zone(alice)
            self.check_shown_time(alice, "Asia/Tokyo")
            self.shoot(alice, "4-landing-web3-asia-tokyo")

        self.step("a fresh load on web3 shows Asia/Tokyo and a time consistent with it", web3_shows_the_new_zone)

        def unknown_zone_is_refused():
            self.open(alice, web2 + "/settings", "settings")
            self.choose_zone_with_htmx(alice, "Mars/Base")
            WebDriverWait(alice, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]"))
            message = alice.find_element(By.CSS_SELECTOR, "[role=alert]").text
            assert "Mars/Base" in message and "Nothing was changed" in message, message
            assert alice.execute_script("return window.__beforeSubmit") is True, "htmx swapped it in, no reload"
            posts = self.network(alice)
            assert [p.get("status") for p in posts] == [422], posts
            self.collect_console(alice, "settings after a refused zone")
            self.shoot(alice, "5-error-422-unknown-zone")
            self.open(alice, web3 + "/", "landing")
            assert self.zone(alice) == "Asia/Tokyo", "the refused zone changed something"

        self.step("an unknown zone posted with the htmx form shows the error and changes nothing", unknown_zone_is_refused)

        def logout_everywhere_signs_out_another_profile():
            self.sign_in(other, web1, "landing (second profile)")
            self.open(alice, web3 + "/sessions", "sessions")
            rows = alice.find_elements(By.CSS_SELECTOR, "form[action='/sessions/sign-out']")
            assert len(rows) >= 2, f"{len(rows)} devices listed"
            self.shoot(alice, "6-sessions")
            # At phone width: the two browser profiles named by browser and system (headless Chromium on Linux; the
            # rig's checker, which sends no User-Agent, left "Unknown device" rows), and the page no wider than the
            # phone, the full user agents folded away in their <details>.
            alice.set_window_size(390, 844)
            names = [e.text for e in alice.find_elements(By.CSS_SELECTOR, ".devices .device")]
            chrome = [n for n in names if re.fullmatch(r"Chrome \d+ on Linux", n)]
            assert len(chrome) >= 2 and set(names) - set(chrome) <= {"Unknown device"}, f"devices {names}"
            overflow = alice.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the sessions page is {overflow}px wider than a phone"
            alice.set_window_size(1280, 900)
            alice.find_element(By.CSS_SELECTOR, "form[action='/logout-everywhere'] button").click()
            WebDriverWait(alice, 10).until(lambda d: d.find_elements(By.NAME, "username"))
            self.open(other, web1 + "/", "landing (second profile)")
            assert other.find_elements(By.NAME, "username"), "the second profile is still signed in"
            assert not other.find_elements(By.CSS_SELECTOR, "[data-timezone]")
            self.shoot(other, "7-signed-out")

        self.step("log out everywhere from web3 signs a second profile out on web1", logout_everywhere_signs_out_another_profile)

        def a_framed_page_is_refused():
            # Another site frames the signed-in page with its one-click forms (clickjacking). The instance's
            # Content-Security-Policy (frame-ancestors 'none') and X-Frame-Options make the browser refuse it.
            self.collect_console(alice, "before framing")
            alice.get("data:text/html,<title>framer</title><iframe id=victim src='" + web1 + "/sessions' width=800 height=600></iframe>")
            WebDriverWait(alice, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
            time.sleep(0.5)
            alice.get_log("browser")  # the refusal may be logged here; it is expected, not a page's error
            # Without the policy the frame shows this site's login form (a cross-site frame gets no Lax cookie); with
            # it, Chromium shows its own error page in the frame instead.
            alice.switch_to.frame(alice.find_element(By.ID, "victim"))
            try:
                framed_forms = alice.find_elements(By.CSS_SELECTOR, "form")
            finally:
                alice.switch_to.default_content()
            assert not framed_forms, f"the framed page rendered {len(framed_forms)} forms"
            self.shoot(alice, "7b-framing-refused")

        self.step("a page inside an <iframe> on another site is refused (CSP frame-ancestors)", a_framed_page_is_refused)

        def too_many_attempts_is_a_page():
            for _ in range(8):
                self.open(other, web1 + "/", "login")
                username = other.find_element(By.NAME, "username")
                username.clear()  # the form keeps the name after a failure
                username.send_keys("bob")
                other.find_element(By.NAME, "password").send_keys("not-bobs-password")
                submit = other.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]")
                submit.click()
                # The answer is a new page: wait for the old one to go before reading it.
                WebDriverWait(other, 10).until(expected_conditions.staleness_of(submit))
                WebDriverWait(other, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
                if "Too many failed attempts" in other.page_source:
                    break
            alert = other.find_element(By.CSS_SELECTOR, "[role=alert]").text
            assert "Too many failed attempts" in alert, alert
            self.shoot(other, "8-error-429-too-many-attempts")
            self.collect_console(other, "login errors")

        self.step("too many failed logins is a page with a message (429)", too_many_attempts_is_a_page)

        def console_is_clean():
            assert not self.console_errors, "\n".join(self.console_errors)

        self.step("no errors in the browser console on any page", console_is_clean)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", default=os.path.join(ROOT, "docker", ".rig", "screenshots"))
    parser.add_argument("--through-lb", action="store_true", help="every step through the load balancer")
    arguments = parser.parse_args()
    os.makedirs(arguments.screenshots, exist_ok=True)
    try:
        urls = rig_urls()
    except (OSError, KeyError) as error:
        print(f"browser_flow: no running rig ({error}); start it with docker/rig up", file=sys.stderr)
        return 2
    if arguments.through_lb:
        urls = {name: urls["lb"] for name in urls}
    started = time.monotonic()
    Flow(urls, arguments.screenshots).run()
    print(f"screenshots: {arguments.screenshots}")
    print(f"browser: {len(PASSED)} passed, {len(FAILED)} failed ({time.monotonic() - started:.1f} s)")
    return 0 if not FAILED else 1


if __name__ == "__main__":
    sys.exit(main())
