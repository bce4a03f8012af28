// The token view in the browser: arcs from a token to the cached tokens its attention read,
// drawn over the text; hover previews a token's reads and numbers, a click locks them.
//
// Everything it draws comes with the data, one JSON text, so hovering asks nothing of the server:
// `html` is the escaped view built in Python, `reads` the top reads of every token in the chosen
// layer, and `tips` each token's numbers. Text from the page's data only ever reaches the DOM
// through textContent, never as markup.
export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  const d = typeof data === 'string' ? JSON.parse(data) : (data || {});
  let root = parentElement.querySelector(':scope > .ham-root');
  if (!root) {
    root = document.createElement('div');
    root.className = 'ham-root';
    const box = document.createElement('div');
    box.className = 'ham-box';
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'ham-arcs');
    svg.setAttribute('aria-hidden', 'true');
    const tip = document.createElement('div');
    tip.className = 'ham-tip';
    tip.setAttribute('role', 'tooltip');
    tip.hidden = true;
    root.append(box, svg, tip);
    parentElement.appendChild(root);
  }
  if (root.hamCleanup) root.hamCleanup();
  const box = root.querySelector('.ham-box');
  const svg = root.querySelector('.ham-arcs');
  const tip = root.querySelector('.ham-tip');
  box.innerHTML = d.html || '';
  const prefix = d.prefix || 'ham';
  const reads = d.reads || { keys: [], weights: [] };
  const rows = (d.tips && d.tips.rows) || [];
  const nLayers = (d.tips && d.tips.layers) || 0;
  let locked = d.selected === null || d.selected === undefined ? null : d.selected;
  let shown = null;

  const ARC_MIN = 20, ARC_SHARE = 0.2;       // arcs for the strongest read, and reads >= 2% and >= 1/5 of it
  const tok = (i) => box.querySelector('#' + prefix + '-t' + i);
  const colour = (a) => 'rgba(216,27,96,' + a.toFixed(3) + ')';

  function clearMarks() {
    for (const el of box.querySelectorAll('.ham-read')) {
      el.classList.remove('ham-read');
      el.style.outlineColor = '';
      delete el.dataset.read;
    }
    for (const el of box.querySelectorAll('.ham-hover')) el.classList.remove('ham-hover');
    svg.replaceChildren();
  }

  // Reads of token i: rings on the tokens read, arcs from i to each (thickness by weight).
  function draw(i) {
    clearMarks();
    shown = i;
    root.dataset.shown = i === null ? '' : String(i);
    if (i === null || i === undefined) return;
    const from = tok(i);
    if (!from) return;
    if (i !== locked) from.classList.add('ham-hover');
    const keys = reads.keys[i] || [];
    const weights = reads.weights[i] || [];
    const top = Math.max(1e-9, ...weights);
    const base = root.getBoundingClientRect();
    svg.setAttribute('width', root.scrollWidth);
    svg.setAttribute('height', root.scrollHeight);
    const anchor = (el) => {
      const r = el.getClientRects()[0] || el.getBoundingClientRect();
      return [r.left + r.width / 2 - base.left, r.top - base.top + 1];
    };
    const [x1, y1] = anchor(from);
    keys.forEach((k, j) => {
      const to = tok(k);
      if (!to) return;
      const w = weights[j] / 1000;
      const strength = weights[j] / top;
      to.classList.add('ham-read');
      to.dataset.read = w.toFixed(3);
      to.style.outlineColor = colour(0.35 + 0.65 * strength);
      if (k === i) return;                       // a token reading itself: a ring, no arc
      if (j > 0 && (weights[j] < ARC_MIN || strength < ARC_SHARE)) return;   // faint reads: a ring only
      const [x2, y2] = anchor(to);
      const lift = 14 + Math.min(70, 0.12 * Math.abs(x1 - x2) + 0.25 * Math.abs(y1 - y2));
      const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
      path.setAttribute('d', `M${x1},${y1} C${x1},${y1 - lift} ${x2},${Math.min(y1, y2) - lift} ${x2},${y2}`);
      path.setAttribute('class', 'ham-arc');
      path.setAttribute('stroke', colour(0.3 + 0.6 * strength));
      path.setAttribute('stroke-width', (1 + 6 * strength).toFixed(2));
      path.dataset.from = String(i);
      path.dataset.to = String(k);
      path.dataset.w = w.toFixed(3);
      svg.appendChild(path);
      const dot = document.createElementNS('http://www.w3.org/2000/svg', 'circle');
      dot.setAttribute('cx', x2);
      dot.setAttribute('cy', y2);
      dot.setAttribute('r', (2 + 2.5 * strength).toFixed(2));
      dot.setAttribute('fill', colour(0.9));
      svg.appendChild(dot);
    });
  }

  const pct = (p) => (p >= 0.1 ? (100 * p).toFixed(0) : (100 * p).toFixed(1)) + '%';
  const num = (x, digits) => (x === null || x === undefined ? '–' : x.toFixed(digits));
  const quoted = (t) => '\u201c' + t + '\u201d';

  function line(parts) {
    const div = document.createElement('div');
    for (const [text, cls] of parts) {
      const span = document.createElement('span');
      span.textContent = text;
      if (cls) span.className = cls;
      div.appendChild(span);
    }
    tip.appendChild(div);
  }

  // GLTR-style: the model's top guesses for this position beside its surprise and cache flags.
  function showTip(i, el) {
    const row = rows[i];
    if (!row) { tip.hidden = true; return; }
    const [text, lm, surprise, mask, bought, guesses] = row;
    tip.replaceChildren();
    line([['#' + i + ' ', 'ham-tip-i'], [quoted(text), 'ham-tip-tok']]);
    if (lm === null) {
      line([['first token: nothing before it to predict it from', '']]);
    } else {
      line([['next-token surprisal ', ''], [num(lm, 2) + ' nats', 'ham-tip-num'],
            [' (the model gave it ' + pct(Math.exp(-lm)) + ')', '']]);
    }
    if (guesses && guesses.length) {
      const parts = [["the model's top guesses: ", '']];
      guesses.forEach(([g, p], j) => {
        parts.push([quoted(g) + ' ' + pct(p), g === text ? 'ham-tip-hit' : 'ham-tip-guess']);
        if (j < guesses.length - 1) parts.push([' · ', '']);
      });
      line(parts);
    }
    const layers = [];
    for (let l = 0; l < nLayers; l++) layers.push('L' + (l + 1) + ' ' + num(surprise[l], 2) + ((mask >> l) & 1 ? ' ▣' : ''));
    line([['RNN surprise: ', ''], [layers.join(' · '), 'ham-tip-num']]);
    const cachedIn = [];
    for (let l = 0; l < nLayers; l++) if ((mask >> l) & 1) cachedIn.push(l + 1);
    line([[cachedIn.length ? '▣ in the KV cache of layer' + (cachedIn.length > 1 ? 's ' : ' ') + cachedIn.join(', ')
                           : 'in no layer\u2019s KV cache', '']]);
    if (bought !== null && bought !== undefined) {
      line([['the cache bought ', ''], [(bought >= 0 ? '+' : '') + num(bought, 3) + ' nats', 'ham-tip-num'],
            [' here (loss without a cache − loss now)', '']]);
    }
    tip.hidden = false;
    const base = root.getBoundingClientRect();
    const r = el.getBoundingClientRect();
    const left = Math.max(0, Math.min(r.left - base.left, root.clientWidth - tip.offsetWidth - 4));
    tip.style.left = left + 'px';
    tip.style.top = (r.bottom - base.top + 8) + 'px';
  }

  const target = (e) => e.target.closest && e.target.closest('.ham-tok');
  const onOver = (e) => {
    const el = target(e);
    if (!el || el.dataset.i === undefined) return;
    const i = parseInt(el.dataset.i, 10);
    if (i !== shown) draw(i);
    showTip(i, el);
  };
  const onLeave = () => {
    tip.hidden = true;
    if (shown !== locked) draw(locked);
  };
  const onClick = (e) => {
    const el = target(e);
    if (!el || el.dataset.i === undefined) return;
    const i = parseInt(el.dataset.i, 10);
    for (const s of box.querySelectorAll('.ham-selected, .ham-word')) s.classList.remove('ham-selected', 'ham-word');
    el.classList.add('ham-selected');
    // The other pieces of a word split into several tokens (data-w: its first piece) go with it.
    if (el.dataset.w !== undefined) {
      for (const s of box.querySelectorAll('[data-w="' + el.dataset.w + '"]')) if (s !== el) s.classList.add('ham-word');
    }
    locked = i;
    draw(i);
    setTriggerValue('clicked', i);
  };
  box.addEventListener('mouseover', onOver);
  root.addEventListener('mouseleave', onLeave);
  box.addEventListener('click', onClick);
  // The observer's first call (right after the browser lays the new view out) draws the locked
  // token's reads, so reading token positions forces no extra layout; later calls redraw on resize.
  const resize = new ResizeObserver(() => draw(shown === null ? locked : shown));
  resize.observe(box);
  root.hamCleanup = () => {
    box.removeEventListener('mouseover', onOver);
    root.removeEventListener('mouseleave', onLeave);
    box.removeEventListener('click', onClick);
    resize.disconnect();
    root.hamCleanup = null;
  };
  return root.hamCleanup;
}
