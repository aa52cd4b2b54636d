// A mutation-heavy page: a board of price cells rewritten, added and removed at high
// rate. `window.demoStress.run(total, perTick)` makes `total` DOM mutations, `perTick`
// per macrotask (so a MutationObserver sees them as a page really would), and resolves
// with the time it took in ms. The button runs it for a few seconds.
(function () {
  'use strict';
  var CELLS = 400;
  var board;
  var serial = 0;

  function cell() {
    var div = document.createElement('div');
    serial += 1;
    div.className = 'cell';
    div.textContent = 'SKU-' + serial + ' $' + (10 + (serial * 7919) % 990) / 10;
    return div;
  }

  function mutate(i) {
    var cells = board.children;
    var target = cells[(i * 31) % cells.length];
    switch (i % 4) {
      case 0: // text
        target.textContent = 'SKU-' + i + ' $' + ((i * 7919) % 9990) / 100;
        break;
      case 1: // attribute
        target.className = i % 8 === 1 ? 'cell up' : 'cell down';
        break;
      case 2: // add
        board.insertBefore(cell(), target);
        break;
      default: // remove, keeping the board about the same size
        if (cells.length > CELLS / 2) board.removeChild(target);
        else board.appendChild(cell());
    }
  }

  function tick() {
    return new Promise(function (resolve) { setTimeout(resolve, 0); });
  }

  async function run(total, perTick) {
    perTick = perTick || 250;
    var started = performance.now();
    for (var done = 0; done < total; done += perTick) {
      var end = Math.min(total, done + perTick);
      for (var i = done; i < end; i++) mutate(i);
      await tick();
    }
    return performance.now() - started;
  }

  async function runFor(seconds) {
    var started = performance.now();
    var count = 0;
    while (performance.now() - started < seconds * 1000) {
      for (var i = 0; i < 100; i++) mutate(count + i);
      count += 100;
      await tick();
    }
    return { mutations: count, ms: performance.now() - started };
  }

  function init() {
    board = document.getElementById('board');
    if (!board) return;
    for (var i = 0; i < CELLS; i++) board.appendChild(cell());
    window.demoStress = { run: run, runFor: runFor };
    var button = document.getElementById('stress-start');
    var result = document.getElementById('stress-result');
    button.addEventListener('click', async function () {
      button.disabled = true;
      var outcome = await runFor(Number(button.dataset.seconds) || 3);
      result.textContent = outcome.mutations.toLocaleString() + ' mutations in ' +
        Math.round(outcome.ms) + ' ms (' + Math.round(outcome.mutations / outcome.ms * 1000).toLocaleString() + '/s)';
      button.disabled = false;
    });
    document.body.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
