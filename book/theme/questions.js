// Predict, then run: a printed page cannot be clicked, so every answer prints open (where CSS
// alone cannot open a closed <details>; see theme/questions.css), and closes again afterwards.
(function () {
    var opened = [];
    window.addEventListener('beforeprint', function () {
        document.querySelectorAll('details.answer:not([open])').forEach(function (details) {
            details.open = true;
            opened.push(details);
        });
    });
    window.addEventListener('afterprint', function () {
        opened.forEach(function (details) { details.open = false; });
        opened = [];
    });
})();
