// The built-in page: upload, browse and view, on the service's own routes (no build step).
// Every URL is relative, resolved against the page's own (the service's root): behind a
// reverse proxy that serves the service under a path prefix, the page works there too.
// Every value from a DICOM file reaches the page as text (textContent), never as markup.

const PAGE_SIZE = 20;
const PARALLEL_UPLOADS = 3;
const PRESETS = {
  lung: { center: -600, width: 1500, label: "CT lung" },
  bone: { center: 300, width: 1500, label: "CT bone" },
  brain: { center: 40, width: 80, label: "CT brain" },
  abdomen: { center: 40, width: 400, label: "CT abdomen" },
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

async function problemText(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(await problemText(response));
  return response.json();
}

// ---------------------------------------------------------------- DICOM JSON helpers

function first(dataset, tag) {
  const element = dataset?.[tag];
  return element?.Value?.[0];
}

function text(dataset, tag) {
  const value = first(dataset, tag);
  if (value == null) return "";
  if (typeof value === "object") return personName(value);
  return String(value);
}

function personName(value) {
  return ["Alphabetic", "Ideographic", "Phonetic"]
    .map((group) => value[group])
    .filter((part) => part)
    .join(" = ");
}

function displayDate(value) {
  return /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : value;
}

function tagLabel(tag) {
  return `(${tag.slice(0, 4)},${tag.slice(4)})`;
}

// ---------------------------------------------------------------- uploads

const uploads = { stored: 0, present: 0, rejected: 0, queue: [], running: 0 };

function summarizeUploads() {
  const waiting = uploads.queue.length + uploads.running;
  const parts = [
    `${uploads.stored} stored`,
    `${uploads.present} already present`,
    `${uploads.rejected} rejected`,
  ];
  $("upload-summary").textContent =
    (waiting ? `Uploading: ${waiting} to go. ` : "Done. ") + parts.join(" · ");
}

function enqueueUploads(files) {
  if (!files.length) return;
  $("uploads").hidden = false;
  for (const file of files) {
    const progress = el("progress", { max: 1, value: 0 });
    const status = el("span", { class: "status", text: "waiting" });
    const row = el("li", {}, el("span", { class: "name", text: file.webkitRelativePath || file.name, title: file.name }), progress, status);
    $("upload-list").append(row);
    uploads.queue.push({ file, progress, status });
  }
  summarizeUploads();
  pumpUploads();
}

function pumpUploads() {
  while (uploads.running < PARALLEL_UPLOADS && uploads.queue.length) {
    const job = uploads.queue.shift();
    uploads.running += 1;
    uploadOne(job).finally(() => {
      uploads.running -= 1;
      summarizeUploads();
      if (!uploads.running && !uploads.queue.length) loadStudies();
      pumpUploads();
    });
  }
}

function uploadOne({ file, progress, status }) {
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", "dicom-image");
    request.responseType = "json";
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = event.loaded / event.total;
    };
    request.onload = () => {
      progress.value = 1;
      const body = request.response || {};
      if (request.status === 201) {
        uploads.stored += 1;
        status.className = "status stored";
        status.textContent = "stored";
      } else if (request.status === 200) {
        uploads.present += 1;
        status.className = "status present";
        status.textContent = "already present";
      } else {
        uploads.rejected += 1;
        status.className = "status rejected";
        status.textContent = `rejected: ${body.detail || body.title || request.status}`;
      }
      resolve();
    };
    request.onerror = () => {
      uploads.rejected += 1;
      status.className = "status rejected";
      status.textContent = "rejected: the connection failed";
      resolve();
    };
    status.textContent = "uploading";
    request.send(form);
  });
}

async function filesOfDrop(dataTransfer) {
  // Entries must be taken while the drop event is being handled; files are read after.
  const entries = [];
  const loose = [];
  for (const item of dataTransfer.items || []) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) loose.push(file);
    }
  }
  if (!entries.length && !loose.length) return [...(dataTransfer.files || [])];
  const found = [...loose];
  for (const entry of entries) await walkEntry(entry, found);
  return found;
}

async function walkEntry(entry, found) {
  if (entry.isFile) {
    found.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const child of batch) await walkEntry(child, found);
  }
}

function setUpDrop() {
  const zone = $("drop");
  let depth = 0;
  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    zone.classList.add("over");
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("over");
  });
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    depth = 0;
    zone.classList.remove("over");
    enqueueUploads(await filesOfDrop(event.dataTransfer));
  });
  // A drop beside the zone must not make the browser navigate away to the file.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  zone.addEventListener("keydown", (event) => {
    if (event.target === zone && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      const input = $("pick-files");
      if (input.showPicker) input.showPicker();
      else input.click();
    }
  });
  for (const id of ["pick-files", "pick-folder"]) {
    $(id).addEventListener("change", (event) => {
      enqueueUploads([...event.target.files]);
      event.target.value = "";
    });
  }
}

// ---------------------------------------------------------------- the study list

const list = { offset: 0, asked: 0 };
const deidNotes = new Map(); // study UID -> the line telling its de-identification

function studyQuery() {
  const params = new URLSearchParams({
    limit: String(PAGE_SIZE + 1),
    offset: String(list.offset),
    includefield: "00081030",
  });
  const name = $("q-name").value.trim();
  const id = $("q-id").value.trim();
  const modality = $("q-modality").value.trim().toUpperCase();
  if (name) params.set("PatientName", /[*?]/.test(name) ? name : `*${name}*`);
  if (id) params.set("PatientID", id);
  if (modality) params.set("ModalitiesInStudy", modality);
  return params;
}

async function loadStudies() {
  const message = $("list-message");
  const asked = ++list.asked; // only the answer to the last question is shown
  let studies;
  const query = studyQuery();
  try {
    studies = await getJson(`dicomweb/studies?${query}`);
  } catch (error) {
    if (asked === list.asked) message.textContent = `The study list could not be read: ${error.message}`;
    return;
  }
  if (asked !== list.asked) return;
  const more = studies.length > PAGE_SIZE;
  studies = studies.slice(0, PAGE_SIZE);
  $("studies").replaceChildren(...studies.map(studyItem));
  $("studies").dataset.query = query.toString(); // what the list shows the answer to
  const searching = [...studyQuery().keys()].some((key) => !["limit", "offset", "includefield"].includes(key));
  message.textContent =
    studies.length || list.offset
      ? ""
      : searching
        ? "No study matches the search."
        : "No studies stored yet: drop DICOM files above.";
  $("prev").disabled = list.offset === 0;
  $("next").disabled = !more;
  const from = studies.length ? list.offset + 1 : 0;
  $("page-label").textContent = `Studies ${from}–${list.offset + studies.length}`;
}

function studyItem(study) {
  const uid = text(study, "0020000D");
  const count = text(study, "00201208");
  const facts = [
    ["Patient ID", text(study, "00100020")],
    ["Study date", displayDate(text(study, "00080020"))],
    ["Description", text(study, "00081030")],
    ["Modalities", (study["00080061"]?.Value || []).join(", ")],
    ["Instances", count],
  ].filter(([, value]) => value);
  const filesButton = el("button", { type: "button", text: `Files (${count || "?"})`, "aria-expanded": "false" });
  const files = el("ul", { class: "files", hidden: true });
  filesButton.addEventListener("click", () => toggleFiles(filesButton, files, uid));
  const name = text(study, "00100010") || "(no patient name)";
  // Kept across reloads of the list (the copy's arrival reloads it).
  const deidStatus = deidNotes.get(uid) || el("div", { class: "deid-status", role: "status" });
  deidNotes.set(uid, deidStatus);
  const deidButton = el("button", { type: "button", text: "De-identify" });
  deidButton.addEventListener("click", () => deidentify(uid, deidButton, deidStatus));
  const head = el(
    "div",
    { class: "study-head" },
    el("img", { class: "thumb", alt: "", loading: "lazy", src: `ui/thumbnails/study/${encodeURIComponent(uid)}` }),
    el(
      "div",
      {},
      el("div", { class: "study-title", text: name }),
      el("div", { class: "facts" }, ...facts.map(([label, value]) => el("span", { text: `${label}: ${value}` }))),
    ),
    el(
      "div",
      { class: "study-actions" },
      filesButton,
      el("a", { class: "button", href: zipUrl(uid), download: "", text: "Download study (ZIP)" }),
      el("a", { class: "button", href: ohifStudyUrl(uid), text: "Open in OHIF" }),
      deidButton,
    ),
  );
  return el("li", { class: "study", "data-study": uid }, head, deidStatus, files);
}

// A de-identified copy of the study (PS3.15's Basic Profile, keyed pseudonyms) made by a job
// on the server: its progress is polled, and the new study is offered when it is done.
async function deidentify(uid, button, status) {
  button.disabled = true;
  status.replaceChildren("De-identifying: starting…");
  try {
    const response = await fetch(`dicomweb/studies/${encodeURIComponent(uid)}/deidentify`, {
      method: "POST",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(await problemText(response));
    const location = response.headers.get("Location").replace(/^\//, "");
    let job = await response.json();
    while (job.state === "pending" || job.state === "running") {
      status.replaceChildren(`De-identifying: ${job.done} of ${job.total || "?"} instances`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await getJson(location);
    }
    showCopy(job, status);
  } catch (error) {
    status.replaceChildren(`Not de-identified: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function showCopy(job, status) {
  const result = job.result || {};
  const stored = (result.stored || 0) + (result.already_stored || 0);
  const left = (result.excluded || []).map((e) => `${e.sop_instance_uid}: ${e.reason}`);
  const parts = [
    job.state === "succeeded"
      ? `De-identified copy: ${stored} instance${stored === 1 ? "" : "s"} in the new study ${result.study}.`
      : `De-identification failed: ${job.error}`,
  ];
  if (left.length) parts.push(` Left out: ${left.join("; ")}.`);
  status.replaceChildren(...parts);
  if (job.state === "succeeded" && stored) {
    status.append(
      " ",
      el("a", { class: "button", href: ohifStudyUrl(result.study), text: "Open the copy in OHIF" }),
      " ",
      el("a", { class: "button", href: zipUrl(result.study), download: "", text: "Download the copy (ZIP)" }),
    );
    loadStudies(); // the copy is a study of its own in the list
  }
}

function zipUrl(study, series) {
  // WADO-RS's retrieve as one ZIP of the files as stored. A link cannot set Accept, so it
  // says so by PS3.18's accept query parameter; the browser saves the stream as it comes.
  const where = `dicomweb/studies/${encodeURIComponent(study)}`;
  const path = series ? `${where}/series/${encodeURIComponent(series)}` : where;
  return `${path}?accept=${encodeURIComponent("application/zip")}`;
}

function ohifStudyUrl(uid) {
  return `ohif/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}`;
}

async function toggleFiles(button, files, uid) {
  const open = button.getAttribute("aria-expanded") === "true";
  button.setAttribute("aria-expanded", String(!open));
  files.hidden = open;
  if (open || files.childElementCount) return;
  try {
    const [items, described] = await Promise.all([studyFiles(uid), studyInstances(uid)]);
    // In reading order: by series number, then instance number (as a viewer stacks them).
    const order = (item) => {
      const about = described.get(item.sop_instance_uid) || {};
      return [about.series ?? Infinity, about.instance ?? Infinity];
    };
    items.sort((a, b) => {
      const [sa, ia] = order(a);
      const [sb, ib] = order(b);
      return sa - sb || ia - ib;
    });
    files.replaceChildren(...items.map((item) => fileItem(item, described.get(item.sop_instance_uid))));
  } catch (error) {
    files.replaceChildren(el("li", { text: `The files could not be listed: ${error.message}` }));
  }
}

async function studyFiles(uid) {
  const items = [];
  let cursor = null;
  do {
    const params = new URLSearchParams({ study_instance_uid: uid, limit: "500" });
    if (cursor) params.set("cursor", cursor);
    const page = await getJson(`dicom-image?${params}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < 5000);
  return items;
}

async function studyInstances(uid) {
  // What a person recognises an instance by (QIDO-RS): modality, series, instance number.
  const params = new URLSearchParams({ limit: "5000", includefield: "0008103E" });
  params.append("includefield", "00280008");
  const found = new Map();
  try {
    for (const instance of await getJson(`dicomweb/studies/${encodeURIComponent(uid)}/instances?${params}`)) {
      const number = (tag) => {
        const value = first(instance, tag);
        return value != null && Number.isFinite(Number(value)) ? Number(value) : undefined;
      };
      found.set(text(instance, "00080018"), {
        modality: text(instance, "00080060"),
        series: number("00200011"),
        description: text(instance, "0008103E"),
        instance: number("00200013"),
        frames: number("00280008"),
      });
    }
  } catch {
    // the file list alone still opens every file
  }
  return found;
}

function fileItem(item, about) {
  const uid = item.sop_instance_uid;
  const size = `${Math.max(1, Math.round(item.size / 1024))} KiB`;
  let label = uid;
  if (about) {
    const series = about.series != null ? `series ${about.series}` : "";
    const parts = [about.modality, [series, about.description].filter((v) => v).join(" "), about.instance != null ? `#${about.instance}` : ""];
    if (about.frames > 1) parts.push(`${about.frames} frames`);
    label = parts.filter((v) => v).join(" · ") || uid;
  }
  return el(
    "li",
    {},
    el(
      "a",
      { href: `#/file/${encodeURIComponent(item.file_id)}`, title: uid },
      el("img", { class: "thumb", alt: "", loading: "lazy", src: `ui/thumbnails/file/${encodeURIComponent(item.file_id)}` }),
      el("span", { class: "file-text" }, el("span", { text: label }), el("small", { text: size })),
    ),
  );
}

function setUpList() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    list.offset = 0;
    loadStudies();
  });
  $("prev").addEventListener("click", () => {
    list.offset = Math.max(0, list.offset - PAGE_SIZE);
    loadStudies();
  });
  $("next").addEventListener("click", () => {
    list.offset += PAGE_SIZE;
    loadStudies();
  });
}

// ---------------------------------------------------------------- the viewer

const view = {
  id: null,
  frames: 1,
  frame: 1,
  mode: "file", // file | minmax | custom
  center: 0,
  width: 1,
  grayscale: true,
  zoom: null, // null: fit
  shownUrl: null,
  loading: false,
  wanted: null,
};

function imageUrl() {
  const params = new URLSearchParams();
  if (view.frames > 1) params.set("frame", String(view.frame));
  if (view.grayscale) {
    if (view.mode === "minmax") params.set("voi", "minmax");
    else if (view.mode === "custom") {
      params.set("window_center", view.center.toFixed(2));
      params.set("window_width", view.width.toFixed(2));
    }
  }
  const query = params.toString();
  return `dicom-image/${encodeURIComponent(view.id)}/png${query ? `?${query}` : ""}`;
}

function showImage() {
  view.wanted = imageUrl();
  $("stage").dataset.wanted = view.wanted;
  updateWindowLabel();
  if (!view.loading) loadWanted();
}

async function loadWanted() {
  const url = view.wanted;
  if (!url || url === view.shownUrl) return;
  view.loading = true;
  $("stage").classList.add("busy");
  try {
    const response = await fetch(url);
    if (!response.ok) {
      $("file-message").textContent = `The image cannot be shown: ${await problemText(response)}`;
    } else {
      const blob = await response.blob();
      const image = $("image");
      const old = image.src;
      const objectUrl = URL.createObjectURL(blob);
      await new Promise((resolve) => {
        image.onload = resolve;
        image.onerror = resolve;
        image.src = objectUrl;
      });
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      image.dataset.url = url;
      view.shownUrl = url;
      applyZoom();
    }
  } catch (error) {
    $("file-message").textContent = `The image cannot be shown: ${error.message}`;
  } finally {
    view.loading = false;
    $("stage").classList.remove("busy");
  }
  if (view.wanted !== view.shownUrl && view.wanted !== url) loadWanted();
}

function updateWindowLabel() {
  const label = $("window-label");
  if (!view.grayscale) label.textContent = "colour image: no window";
  else if (view.mode === "custom") label.textContent = `C ${Math.round(view.center)} / W ${Math.round(view.width)}`;
  else if (view.mode === "minmax") label.textContent = "min–max of the image";
  else label.textContent = view.fileWindow ? `C ${view.fileWindow.center} / W ${view.fileWindow.width}` : "min–max (no window in the file)";
}

function setWindow(center, width) {
  view.mode = "custom";
  view.center = center;
  view.width = Math.max(1, width);
  showImage();
}

function applyZoom() {
  const image = $("image");
  const stage = $("stage");
  if (view.zoom == null) {
    stage.classList.remove("zoomed");
    image.style.width = "";
    $("zoom-label").textContent = "fit";
  } else {
    stage.classList.add("zoomed");
    image.style.width = `${Math.round(image.naturalWidth * view.zoom)}px`;
    $("zoom-label").textContent = `${Math.round(view.zoom * 100)} %`;
  }
}

function zoomBy(factor) {
  const image = $("image");
  const stage = $("stage");
  const fitted = image.naturalWidth
    ? Math.min(stage.clientWidth / image.naturalWidth, stage.clientHeight / image.naturalHeight)
    : 1;
  view.zoom = Math.min(16, Math.max(0.1, (view.zoom ?? fitted) * factor));
  applyZoom();
}

function setFrame(frame) {
  view.frame = Math.min(view.frames, Math.max(1, frame));
  $("frame").value = String(view.frame);
  $("frame-label").textContent = `${view.frame} / ${view.frames}`;
  showImage();
  if (view.mode !== "custom") readRange();
}

function dragStart() {
  if (view.mode !== "custom") {
    const start = view.mode === "file" && view.fileWindow ? view.fileWindow : view.range;
    view.center = start.center;
    view.width = start.width;
  }
  return { center: view.center, width: view.width };
}

function setUpViewer() {
  const stage = $("stage");
  let drag = null;
  stage.addEventListener("pointerdown", (event) => {
    if (!view.grayscale || event.button !== 0) return;
    stage.setPointerCapture(event.pointerId);
    drag = { x: event.clientX, y: event.clientY, ...dragStart() };
    $("preset").value = "custom";
  });
  stage.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const step = Math.max(drag.width / 300, 0.01);
    setWindow(drag.center + (event.clientY - drag.y) * step, drag.width + (event.clientX - drag.x) * step);
  });
  const end = () => {
    drag = null;
  };
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
  stage.addEventListener("wheel", (event) => {
    if (!event.ctrlKey) return;
    event.preventDefault();
    zoomBy(event.deltaY < 0 ? 1.25 : 0.8);
  }, { passive: false });
  stage.addEventListener("keydown", (event) => {
    const keys = {
      ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0],
    };
    if (keys[event.key] && view.grayscale) {
      event.preventDefault();
      const { center, width } = dragStart();
      const step = Math.max(width / 50, 0.5);
      $("preset").value = "custom";
      setWindow(center + keys[event.key][1] * step, width + keys[event.key][0] * step);
    } else if (event.key === "+" || event.key === "=") zoomBy(1.25);
    else if (event.key === "-") zoomBy(0.8);
    else if (event.key === "0") { view.zoom = null; applyZoom(); }
    else if (event.key === "PageDown") { event.preventDefault(); setFrame(view.frame + 1); }
    else if (event.key === "PageUp") { event.preventDefault(); setFrame(view.frame - 1); }
  });
  $("preset").addEventListener("change", (event) => {
    const value = event.target.value;
    if (PRESETS[value]) setWindow(PRESETS[value].center, PRESETS[value].width);
    else if (value === "file" || value === "minmax") {
      view.mode = value;
      showImage();
      readRange();
    }
  });
  $("zoom-in").addEventListener("click", () => zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => zoomBy(0.8));
  $("zoom-fit").addEventListener("click", () => { view.zoom = null; applyZoom(); });
  $("frame").addEventListener("input", (event) => setFrame(Number(event.target.value)));
  $("tag-filter").addEventListener("input", (event) => filterTree(event.target.value));
  $("delete").addEventListener("click", () => {
    $("confirm-text").textContent = `${$("file-title").textContent}: the stored file, its index entry and its renderings go, for good.`;
    $("confirm").showModal();
  });
  $("confirm").addEventListener("close", async () => {
    if ($("confirm").returnValue !== "delete") return;
    const response = await fetch(`dicom-image/${encodeURIComponent(view.id)}`, { method: "DELETE" });
    if (response.ok || response.status === 404) {
      $("notice").textContent = "The file was deleted.";
      location.hash = "#/";
    } else {
      $("file-message").textContent = `The file was not deleted: ${await problemText(response)}`;
    }
  });
}

function valueRange(meta) {
  // Until the image's own range is read: the range the stored values can take.
  const bits = Number(first(meta, "00280101") ?? 16);
  const signed = Number(first(meta, "00280103") ?? 0) === 1;
  const slope = Number(first(meta, "00281053") ?? 1);
  const intercept = Number(first(meta, "00281052") ?? 0);
  const low = signed ? -(2 ** (bits - 1)) : 0;
  const high = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  return minmaxWindow(Math.min(low * slope, high * slope) + intercept, Math.max(low * slope, high * slope) + intercept);
}

function minmaxWindow(low, high) {
  // The service's min–max window (centre (min + max + 1) / 2, width max - min + 1).
  return { center: (low + high + 1) / 2, width: high - low + 1 };
}

async function readRange() {
  // Where the file has no window, dragging starts from the window shown: the min–max of the
  // frame's modality values. They are read from the frame's 16-bit PNG (the values plus the
  // offset its dicom:offset text names), so the page needs no route of its own for them.
  if (!view.grayscale || (view.fileWindow && view.mode === "file")) return;
  const id = view.id;
  const frame = view.frame;
  try {
    const response = await fetch(`dicom-image/${encodeURIComponent(id)}/png?bit_depth=16&frame=${frame}`);
    if (!response.ok) return;
    const range = await pngRange(new Uint8Array(await response.arrayBuffer()));
    if (range && view.id === id && view.frame === frame) {
      view.range = minmaxWindow(range.low, range.high);
      $("stage").dataset.range = `${view.range.center},${view.range.width}`;
    }
  } catch {
    // keep the estimate from the header
  }
}

async function pngRange(png) {
  const data = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0;
  let height = 0;
  let offset = 0;
  const idat = [];
  for (let at = 8; at + 8 <= png.length; ) {
    const length = data.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const body = png.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = data.getUint32(at + 8);
      height = data.getUint32(at + 12);
      if (body[8] !== 16 || body[9] !== 0 || body[12] !== 0) return null; // 16-bit grey only
    } else if (type === "tEXt") {
      const [key, value] = new TextDecoder("latin1").decode(body).split("\0");
      if (key === "dicom:offset") offset = Number(value);
    } else if (type === "IDAT") idat.push(body);
    at += 12 + length;
  }
  const stream = new Blob(idat).stream().pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  const stride = width * 2;
  let previous = new Uint8Array(stride);
  let low = Infinity;
  let high = -Infinity;
  for (let y = 0; y < height; y++) {
    const start = y * (stride + 1);
    const filter = raw[start];
    const row = raw.slice(start + 1, start + 1 + stride);
    for (let i = 0; i < stride; i++) {
      const left = i >= 2 ? row[i - 2] : 0;
      const up = previous[i];
      const corner = i >= 2 ? previous[i - 2] : 0;
      let add = 0;
      if (filter === 1) add = left;
      else if (filter === 2) add = up;
      else if (filter === 3) add = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - corner;
        const pa = Math.abs(p - left);
        const pb = Math.abs(p - up);
        const pc = Math.abs(p - corner);
        add = pa <= pb && pa <= pc ? left : pb <= pc ? up : corner;
      }
      row[i] = (row[i] + add) & 255;
    }
    for (let i = 0; i < stride; i += 2) {
      const value = (row[i] << 8) | row[i + 1];
      if (value < low) low = value;
      if (value > high) high = value;
    }
    previous = row;
  }
  return height ? { low: low - offset, high: high - offset } : null;
}

async function openFile(id) {
  view.id = id;
  view.frame = 1;
  view.mode = "file";
  view.zoom = null;
  view.shownUrl = null;
  $("preset").value = "file";
  $("file-message").textContent = "";
  $("file-title").textContent = "";
  $("tag-filter").value = "";
  $("tree").replaceChildren();
  $("image").removeAttribute("src");
  $("download").href = `dicom-image/${encodeURIComponent(id)}`;
  $("series-zip").removeAttribute("href");
  let meta;
  try {
    const answer = await getJson(`dicom-image/${encodeURIComponent(id)}/metadata`);
    meta = Array.isArray(answer) ? answer[0] : answer; // DICOM JSON: a list of one data set
  } catch (error) {
    $("file-message").textContent = `This file cannot be opened: ${error.message}`;
    return;
  }
  if (view.id !== id) return;
  const patient = text(meta, "00100010") || "(no patient name)";
  const what = [text(meta, "00080060"), text(meta, "0008103E") || text(meta, "00081030")].filter((v) => v).join(" · ");
  $("file-title").textContent = what ? `${patient} — ${what}` : patient;
  $("file-ohif").href = ohifStudyUrl(text(meta, "0020000D"));
  $("series-zip").href = zipUrl(text(meta, "0020000D"), text(meta, "0020000E"));
  view.frames = Math.max(1, Number(first(meta, "00280008") ?? 1) || 1);
  $("frame").max = String(view.frames);
  $("frame-control").hidden = view.frames < 2;
  $("frame-label").textContent = `1 / ${view.frames}`;
  $("frame").value = "1";
  const photometric = text(meta, "00280004");
  view.grayscale = !photometric || photometric.startsWith("MONOCHROME");
  $("preset").disabled = !view.grayscale;
  const center = first(meta, "00281050");
  const width = first(meta, "00281051");
  view.fileWindow = center != null && width != null ? { center: Number(center), width: Number(width) } : null;
  view.range = valueRange(meta);
  delete $("stage").dataset.range;
  $("tree").replaceChildren(...treeNodes(meta, "", id));
  if (meta["7FE00010"] || meta["7FE00008"] || meta["7FE00009"]) {
    showImage();
    readRange();
  }
  else {
    $("file-message").textContent = "This file has no pixel data: only its header is shown.";
    updateWindowLabel();
  }
}

// ---------------------------------------------------------------- the header tree

let dictionary = null;

async function loadDictionary() {
  if (!dictionary) {
    try {
      dictionary = await getJson("ui/dictionary.json");
    } catch {
      dictionary = {};
    }
  }
  return dictionary;
}

function valueText(element) {
  if (element.BulkDataURI) return "(bulk data)";
  if (element.InlineBinary != null) return `(binary, ${Math.floor((element.InlineBinary.length * 3) / 4)} bytes)`;
  const values = element.Value;
  if (!values || !values.length) return "";
  return values
    .map((value) => (value != null && typeof value === "object" ? personName(value) : String(value)))
    .join(" \\ ");
}

function treeNodes(dataset, path, id) {
  return Object.keys(dataset)
    .sort()
    .map((tag) => {
      const element = dataset[tag];
      const where = `${path}${tagLabel(tag)}`;
      const row = elementRow(tag, element, where, id);
      if (element.vr !== "SQ") return row;
      const items = (element.Value || []).map((item, index) => {
        const itemPath = `${where}[${index}].`;
        const summary = el("summary", { class: "item-title", text: `Item ${index + 1}` });
        return el("details", { class: "itm" }, summary, el("div", { class: "item" }, ...treeNodes(item, itemPath, id)));
      });
      return el("details", { class: "seq" }, el("summary", {}, row), el("div", { class: "item" }, ...items));
    });
}

function elementRow(tag, element, where, id) {
  const [keyword, name] = dictionary?.[tag] || (parseInt(tag.slice(0, 4), 16) % 2 ? ["", "private"] : ["", "unknown"]);
  const value = element.vr === "SQ" ? `${(element.Value || []).length} item(s)` : valueText(element);
  const lookup = el("a", {
    class: "lookup",
    href: `dicom-image/${encodeURIComponent(id)}?dicom_tag=${encodeURIComponent(where)}`,
    target: "_blank",
    rel: "noopener",
    text: "lookup",
    title: `Tag lookup URL of ${where}`,
  });
  const row = el(
    "div",
    { class: "row", title: name },
    el("span", { class: "tag", text: tagLabel(tag) }),
    el("span", { class: "kw", text: keyword || `(${name})` }),
    el("span", { class: "vr", text: element.vr || "" }),
    el("span", { class: "val", text: value }),
    lookup,
  );
  row.dataset.search = `${tagLabel(tag)} ${tag} ${keyword} ${name} ${value}`.toLowerCase();
  return row;
}

function filterTree(query) {
  const tree = $("tree");
  const wanted = query.trim().toLowerCase();
  const rows = tree.querySelectorAll(".row");
  const wrappers = tree.querySelectorAll("details");
  for (const node of [...rows, ...wrappers]) {
    node.classList.remove("hidden-by-filter");
  }
  for (const row of rows) row.classList.remove("hit");
  if (!wanted) {
    for (const details of wrappers) details.open = false;
    return;
  }
  for (const node of [...rows, ...wrappers]) node.classList.add("hidden-by-filter");
  for (const row of rows) {
    if (!row.dataset.search.includes(wanted)) continue;
    row.classList.add("hit");
    row.classList.remove("hidden-by-filter");
    for (let node = row.parentElement; node && node !== tree; node = node.parentElement) {
      if (node.tagName === "DETAILS") {
        node.classList.remove("hidden-by-filter");
        const own = node.querySelector(":scope > summary > .row");
        if (own) own.classList.remove("hidden-by-filter");
        // A sequence whose own row matched stays closed; one holding a match opens.
        if (!own?.contains(row)) node.open = true;
      }
    }
  }
}

// ---------------------------------------------------------------- routing

async function route() {
  const match = location.hash.match(/^#\/file\/(.+)$/);
  if (match) $("notice").textContent = "";
  $("list-view").hidden = Boolean(match);
  $("file-view").hidden = !match;
  if (match) {
    await loadDictionary();
    await openFile(decodeURIComponent(match[1]));
    $("stage").focus({ preventScroll: true });
  } else {
    view.id = null;
    await loadStudies();
  }
}

// ---------------------------------------------------------------- the DICOM door

async function showDicomDoor() {
  try {
    const response = await fetch("ui/network.json");
    if (!response.ok) return;
    const door = await response.json();
    if (!door.port && !door.tls_port) return;
    const ports = [door.port && `port ${door.port}`, door.tls_port && `TLS port ${door.tls_port}`]
      .filter(Boolean).join(", ");
    $("dicom-door").textContent = `DICOM: AE title ${door.ae_title} at ${location.hostname}, ${ports}`;
    $("dicom-door").hidden = false;
  } catch {
    // The page works without it.
  }
}

showDicomDoor();
setUpDrop();
setUpList();
setUpViewer();
window.addEventListener("hashchange", route);
route();
