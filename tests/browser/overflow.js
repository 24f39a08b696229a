// Injected into a built page by tests/test_book_layout.py: after load, list every output, table,
// paragraph, figure or formula inside the article that is wider than its column (content cut
// off, or reachable only by scrolling sideways), and write the list into the page as JSON.
window.addEventListener('load', () => setTimeout(() => {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  const edge = article.getBoundingClientRect().right;
  const selector = 'div.cell_output pre, div.cell_output table, div.cell_input pre, table, p, li, img, ' +
                   'mjx-container[display="true"], div.math';
  const found = [];
  for (const el of article.querySelectorAll(selector)) {
    if (el.offsetParent === null) continue;  // not displayed (a collapsed cell)
    const scrolled = el.scrollWidth - el.clientWidth;
    const beyond = el.getBoundingClientRect().right - edge;
    if (scrolled > 2 || beyond > 2) {
      found.push({tag: el.tagName.toLowerCase(), scrolled: Math.round(scrolled), beyond: Math.round(beyond),
                  text: (el.innerText || el.getAttribute('alt') || '').replace(/\s+/g, ' ').slice(0, 100)});
    }
  }
  const report = document.createElement('pre');
  report.id = 'overflow-report';
  report.textContent = JSON.stringify(found);
  document.body.appendChild(report);
}, 300));
