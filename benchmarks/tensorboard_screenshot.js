// Screenshot of a running TensorBoard's scalars (the image in docs/stability.md), in headless Chromium.
//
//   npm install --prefix /tmp/shot @sparticuz/chromium puppeteer-core   # both from the npm registry
//   tensorboard --logdir runs/stability_demo --port 6006 &
//   NODE_PATH=/tmp/shot/node_modules node benchmarks/tensorboard_screenshot.js \
//       "http://localhost:6006/?forceSVG=true#timeseries" docs/img/stability_tensorboard.png [REGEX]
//
// REGEX filters the cards, as typed into TensorBoard's tag filter box (default: the stability metrics).
const chromium = require("@sparticuz/chromium");
const puppeteer = require("puppeteer-core");

const [url, out, regex] = process.argv.slice(2);
const filter =
  regex || "train/ce_loss$|optim/grad_norm$|optim/lr$|spike/is_spike|step_skipped|lr_backoff|spike/rate_total|diag/grad_norm/block_[03]";

(async () => {
  const browser = await puppeteer.launch({
    args: chromium.args,
    executablePath: await chromium.executablePath(),
    headless: true,
    defaultViewport: { width: 1600, height: 1150 },
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
  await page.mouse.click(5, 1250);
  await new Promise((r) => setTimeout(r, 8000)); // let the charts draw
  await page.screenshot({ path: out, fullPage: true });
  await browser.close();
})();
