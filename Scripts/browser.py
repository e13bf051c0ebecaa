#!/usr/bin/env python3
"""Drives headless Chromium through Selenium and Debian's chromium-driver, for the status page's browser test.

    python3 Scripts/browser.py URL [WIDTH HEIGHT]

Opens URL in a new headless Chromium, then reads commands from stdin, one per line, and answers each with one JSON
line on stdout:

    wait SECONDS JS-EXPRESSION   wait until the expression is truthy  -> {"ok": true|false, "value": ...}
    eval JS-EXPRESSION           evaluate it                          -> {"ok": true, "value": ...}
    shot PATH                    save a PNG screenshot                 -> {"ok": true, "path": PATH}
    key NAME                     press a key (a Selenium Keys name such as ESCAPE, or the text to type) in the
                                 focused element, as a user does   -> {"ok": true}
    upload CSS-SELECTOR PATH     choose the file PATH in the file input the selector names -> {"ok": true}
    quit                         close the browser and exit

Needs the `selenium` package (Scripts/test installs it in .build/test-venv) and /usr/bin/chromedriver.
"""
import json
import os
import sys

from selenium import webdriver
from selenium.common.exceptions import JavascriptException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait


def open_browser(url, width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    # The driver Debian ships with its Chromium: Selenium then fetches nothing.
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    driver.get(url)
    return driver


def evaluate(driver, expression):
    try:
        return driver.execute_script(f"return ({expression});")
    except JavascriptException:
        return None


def main():
    url = sys.argv[1]
    width = int(sys.argv[2]) if len(sys.argv) > 2 else 1280
    height = int(sys.argv[3]) if len(sys.argv) > 3 else 900
    driver = open_browser(url, width, height)
    try:
        for line in sys.stdin:
            command, _, rest = line.strip().partition(" ")
            if command == "quit":
                break
            if command == "wait":
                seconds, _, expression = rest.partition(" ")
                try:
                    WebDriverWait(driver, float(seconds), poll_frequency=0.1).until(lambda d: evaluate(d, expression))
                except TimeoutException:
                    pass
                value = evaluate(driver, expression)
                answer = {"ok": bool(value), "value": value}
            elif command == "eval":
                answer = {"ok": True, "value": evaluate(driver, rest)}
            elif command == "shot":
                os.makedirs(os.path.dirname(os.path.abspath(rest)), exist_ok=True)
                driver.save_screenshot(rest)
                answer = {"ok": True, "path": rest}
            elif command == "key":
                ActionChains(driver).send_keys(getattr(Keys, rest.upper(), rest)).perform()
                answer = {"ok": True}
            elif command == "upload":
                selector, _, path = rest.partition(" ")
                driver.find_element(By.CSS_SELECTOR, selector).send_keys(path)
                answer = {"ok": True}
            else:
                answer = {"ok": False, "error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
