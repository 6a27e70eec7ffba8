const express = require("express");

const app = express();
app.get("/", (req, res) => res.json({ hello: "from Express", dyno: process.env.DYNO, nodeEnv: process.env.NODE_ENV }));
app.listen(Number(process.env.PORT), "0.0.0.0", () => console.log(`listening on ${process.env.PORT}`));
