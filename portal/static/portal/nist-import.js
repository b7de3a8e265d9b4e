// ANSI/NIST-ITL import: one request per file, so the page shows progress and what became of each file.
function setupNistImport(form) {
  const box = document.querySelector("[data-nist-progress]");
  const bar = box.querySelector("[data-nist-bar]");
  const count = box.querySelector("[data-nist-count]");
  const list = box.querySelector("[data-nist-results]");
  const field = form.querySelector("input[type=file]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = Array.from(field.files);
    box.hidden = false;
    list.replaceChildren();
    if (!files.length) { count.textContent = "Choose at least one ANSI/NIST-ITL file."; return; }
    bar.max = files.length;
    bar.value = 0;
    count.textContent = "0 of " + files.length + " files done";
    let imported = 0;
    const startedAt = performance.now();
    for (const file of files) {
      const data = new FormData(form);
      data.delete(field.name);
      data.append(field.name, file);
      const item = document.createElement("li");
      let records = [];
      try {
        const response = await fetch(form.action, {method: "POST", body: data, credentials: "same-origin",
                                                   headers: {"Accept": "application/json"}});
        const result = await response.json();
        const outcome = (result.results || [])[0];
        if (result.ok && outcome && outcome.ok) {
          const faces = result.summary.faces_enrolled;
          imported += faces;
          item.className = "enrol-ok";
          item.textContent = file.name + ": " + faces + (faces === 1 ? " face" : " faces") + " imported into " + result.gallery;
          records = outcome.skipped;
        } else {
          item.className = "enrol-skipped";
          const whole = outcome && outcome.skipped.find((s) => s.file === file.name);
          item.textContent = file.name + ": refused — " + (whole ? whole.reason : Object.values(result.errors || {}).join(" "));
          records = whole ? [] : (outcome ? outcome.skipped : []);
          if (!whole && records.length) item.textContent = file.name + ": nothing imported";
        }
      } catch (error) {
        item.className = "enrol-skipped";
        item.textContent = file.name + ": not sent (" + error + ")";
      }
      if (records.length) {
        const sub = document.createElement("ul");
        sub.className = "nist-records";
        for (const record of records) {
          const line = document.createElement("li");
          line.textContent = record.file.replace(file.name + " ", "") + ": skipped — " + record.reason;
          sub.append(line);
        }
        item.append(sub);
      }
      list.append(item);
      bar.value += 1;
      count.textContent = bar.value + " of " + files.length + " files done, " + imported + " faces imported"
        + batchPace(bar.value, files.length, startedAt, "files");
    }
    if (imported) {
      const refresh = document.createElement("a");
      refresh.href = window.location.pathname;
      refresh.textContent = "Show the updated galleries";
      count.append(" · ", refresh);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-nist-form]").forEach(setupNistImport);
});
