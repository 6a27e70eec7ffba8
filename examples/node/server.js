// examples/node: a web process with no dependencies; `npm start` runs it.
const http = require("http");
const port = process.env.PORT || 5000;
http
  .createServer((req, res) => {
    res.end(`Hello from ${process.env.DYNO || "a dyno"} (node ${process.version})\n`);
  })
  .listen(port, "0.0.0.0");
