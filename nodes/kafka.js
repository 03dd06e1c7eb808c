module.exports = require("./lib/kafka.js");
