"""Small fixture pages for the tools tests, loaded with ``page.set_content``."""

from __future__ import annotations

# A select, a hover target that reports being hovered, and a page tall enough to scroll.
FORM = """
<label>Plan <select><option value="b">Basic</option><option value="p">Pro</option></select></label>
<button onmouseover="document.getElementById('out').textContent = 'hovered'">Hover me</button>
<p id="out">idle</p>
<div style="height: 5000px"></div><p id="end">The end</p>
"""

# A spinner that hides and a text that appears 300 ms after loading.
LATE = """
<p id="spinner">Loading</p>
<script>setTimeout(() => {
  document.getElementById("spinner").style.display = "none";
  document.body.insertAdjacentHTML("beforeend", "<p>Ready now</p>");
}, 300)</script>
"""

# A script-driven pager whose "Next" button is disabled on the last page (page 3).
PAGER = """
<table><thead><tr><th>N</th></tr></thead><tbody id="b"><tr><td>1</td></tr></tbody></table>
<button id="next">Next</button>
<script>
let n = 1;
document.getElementById("next").onclick = () => {
  n += 1;
  document.getElementById("b").innerHTML = `<tr><td>${n}</td></tr>`;
  if (n === 3) document.getElementById("next").disabled = true;
};
</script>
"""

TWO_TABLES = "<table><tr><td>1</td></tr></table><table><tr><td>2</td></tr></table>"

THREE_BUTTONS = "<button>Go 1</button><button>Go 2</button><button>Go 3</button>"

PLACEHOLDERS = '<input placeholder="Search invoices"><input placeholder="Other">'
