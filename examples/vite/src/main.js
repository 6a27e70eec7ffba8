document.querySelector("#greeting").textContent += " (bundled by Vite)";
