// Screenshot of a running TensorBoard's scalars (the images in docs/), in headless Chromium.
//
//   npm install --prefix /tmp/shot @sparticuz/chromium puppeteer-core   # both from the npm registry
//   tensorboard --logdir runs/stability_demo --port 6006 &
//   NODE_PATH=/tmp/shot/node_modules node benchmarks/tensorboard_screenshot.js \
//       "http://localhost:6006/?forceSVG=true#timeseries" docs/img/stability_tensorboard.png [REGEX]
//
// With CHROMIUM=/usr/bin/chromium (Debian's `apt-get install chromium`) that browser is used instead,
// and only puppeteer-core is needed from npm. REGEX filters the cards, as typed into TensorBoard's tag
// filter box (default: the stability metrics). HEIGHT sets the page height in pixels (default 1150).
const puppeteer = require("puppeteer-core");

// Headless flags for a closed network, as root (Debian's Chromium).
const SYSTEM_CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function launchOptions() {
  if (process.env.CHROMIUM) {
    return { args: SYSTEM_CHROMIUM_ARGS, executablePath: process.env.CHROMIUM };
  }
  const chromium = require("@sparticuz/chromium");
  return { args: chromium.args, executablePath: await chromium.executablePath() };
}

const [url, out, regex] = process.argv.slice(2);
const filter =
  regex || "train/ce_loss$|optim/grad_norm$|optim/lr$|spike/is_spike|step_skipped|lr_backoff|spike/rate_total|diag/grad_norm/block_[03]";

(async () => {
  const height = Number(process.env.HEIGHT || 1150);
  const browser = await puppeteer.launch({
    ...(await launchOptions()),
    headless: true,
    defaultViewport: { width: 1600, height },
  });
  const page = await browser.newPage();
  // TensorBoard's stored settings: raw values (no smoothing), outliers kept in the y range, panes closed.
  await page.evaluateOnNewDocument(() => {
    localStorage.setItem(
      "_tb_global_settings",
      JSON.stringify({ scalarSmoothing: 0, ignoreOutliers: false, timeSeriesSettingsPaneOpened: false,
        sideBarWidthInPercent: 0, stepSelectorEnabled: false }),
    );
  });
  await page.goto(url, { waitUntil: "networkidle0", timeout: 120000 });
  const box = await page.waitForSelector("input[placeholder='Filter tags (regex)']", { timeout: 60000 });
  await box.type(filter);
  await page.keyboard.press("Escape"); // close the tag suggestions
  await page.mouse.click(5, height + 100);
  await new Promise((r) => setTimeout(r, 8000)); // let the charts draw
  await page.screenshot({ path: out, fullPage: true });
  await browser.close();
})();
