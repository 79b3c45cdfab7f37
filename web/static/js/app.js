// The single-page app: a router over real paths (/, /jobs, /jobs/{id}, /capabilities, /profiles; #/... works
// too), the sidebar with the conversation list, and the API key setting.
import { apiKey, setApiKey } from "./api.js";
import { ChatPage, loadConversations } from "./chat.js";
import { clear } from "./dom.js";
import { CapabilitiesPage, JobPage, JobsPage, NotFoundPage, jobAccess } from "./pages.js";
import { ProfilesPage } from "./profiles.js";

const main = document.getElementById("main");
const convList = document.getElementById("conversations");
const sidebar = document.getElementById("sidebar");
let page = null;

function currentPath() {
  if (location.hash.startsWith("#/")) return new URL(location.hash.slice(1), location.origin);
  return new URL(location.href);
}

function pageFor(url) {
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const job = path.match(/^\/jobs\/([^/]+)$/);
  if (job) return new JobPage(decodeURIComponent(job[1]));
  if (path === "/jobs") return new JobsPage();
  if (path === "/capabilities") return new CapabilitiesPage();
  if (path === "/profiles") return new ProfilesPage();
  if (path !== "/") return new NotFoundPage(path);
  return new ChatPage({ conversationId: url.searchParams.get("c"), onConversations: refreshConversations });
}

function refreshConversations(currentId) {
  loadConversations(convList, currentId ?? currentPath().searchParams.get("c"));
}

async function route() {
  page?.unmount();
  const url = currentPath();
  page = pageFor(url);
  clear(main).append(page.el);
  for (const a of document.querySelectorAll("nav.primary a")) {
    const target = new URL(a.href).pathname;
    const here = url.pathname === target || (target !== "/" && url.pathname.startsWith(`${target}/`));
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  sidebar.classList.remove("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", "false");
  await page.mount();
  document.title = `${page.el.querySelector("h1")?.textContent || "Chat"} · Spinbot`;
}

export function navigate(href) {
  history.pushState(null, "", href);
  route();
}

// Same-origin links to app pages navigate in place; API, artifact and download links do not.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);
window.addEventListener("hashchange", route);

const menuToggle = document.getElementById("menu-toggle");
menuToggle.addEventListener("click", () => {
  const open = sidebar.classList.toggle("open");
  menuToggle.setAttribute("aria-expanded", String(open));
  if (open) sidebar.querySelector("a")?.focus(); // keyboard users land in the menu they opened
});
sidebar.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || !sidebar.classList.contains("open")) return;
  sidebar.classList.remove("open");
  menuToggle.setAttribute("aria-expanded", "false");
  menuToggle.focus();
});
document.getElementById("new-chat").addEventListener("click", () => navigate("/"));

const keyDialog = document.getElementById("key-dialog");
function askForKey() {
  if (keyDialog.open) return;
  keyDialog.querySelector("input").value = apiKey();
  keyDialog.showModal();
}
document.getElementById("key-button").addEventListener("click", askForKey);
// The server wants a key this browser does not have (or has a wrong one): ask for it.
window.addEventListener("spinbot:unauthorized", askForKey);
keyDialog.addEventListener("close", () => {
  if (keyDialog.returnValue !== "save") return;
  setApiKey(keyDialog.querySelector("input").value.trim());
  refreshConversations();
  route();
});

// A signed job link (from a chat answer) opens read-only without a key: the key-only sidebar list is not asked for.
if (apiKey() || !jobAccess()) refreshConversations();
route();
